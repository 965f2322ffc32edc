import BridgeCore
import Logging
import Metrics
import Processing
import ServiceLifecycle
import Synchronization

/// Runs one pipe: source → sinks, acknowledging to the source only what every sink confirmed.
public final class PipeRunner: Service {
    public struct Options: Sendable {
        /// Batches grouped into one delivery (one fsync for a file sink) when they are waiting.
        public var maxGroupBatches = 32
        public var maxGroupBytes = 16 << 20
        public var initialRetryDelay: Duration = .milliseconds(200)
        public var maxRetryDelay: Duration = .seconds(30)
        /// Stop gracefully once this many events were delivered (benchmarks, one-off exports).
        public var stopAfterEvents: UInt64?
        /// Where sink metrics go; nil = the process's bootstrapped backend.
        public var metricsFactory: (any MetricsFactory)?
        /// Keeps the most recent delivered events for the pull API; nil = none.
        public var eventBuffer: PipeEventBuffer?

        public init() {}
    }

    /// Counters for logs, tests and (later) metrics.
    public struct Stats: Sendable {
        public var events: UInt64 = 0
        public var bytes: UInt64 = 0
        public var deliveries: UInt64 = 0
        public var retries: UInt64 = 0
        public var deadLetters: UInt64 = 0
        public var confirmed: LSN?
        /// The newest failure (retried or not) and when it happened.
        public var lastError: String?
        public var lastErrorAt: ContinuousClock.Instant?
        public var lastDeliveryAt: ContinuousClock.Instant?
        public var sinks: [SinkStats] = []
        /// What a message source read and what waits for it (nil for the other sources).
        public var source: MessageSourceStats?
    }

    /// Counters of one sink of the pipe.
    public struct SinkStats: Sendable {
        public var name: String
        public var events: UInt64 = 0
        public var bytes: UInt64 = 0
        public var errors: UInt64 = 0
        public var retries: UInt64 = 0
        public var deadLetters: UInt64 = 0
        public var lastError: String?
    }

    public let name: String
    let source: any ChangeSource
    let sinks: [PipeSink]
    let metrics: [SinkMetrics]
    let sourceLatency: SourceLatency
    let deadLetters: DeadLetterQueue?
    let transform: EventTransform?
    /// Per route (index = route - 1): the sinks its events go to; nil = every sink.
    let routeSinks: [[String]?]
    let options: Options
    let logger: Logger
    let statsBox: Mutex<Stats>
    private let stopping = Atomic<Bool>(false)

    /// `deadLetters` nil: rejected events are retried until a sink takes them (never dropped).
    public init(
        name: String, source: any ChangeSource, sinks: [PipeSink], deadLetters: DeadLetterQueue? = nil,
        transform: EventTransform? = nil, routeSinks: [[String]?] = [], options: Options = Options(), logger: Logger
    ) {
        self.transform = transform.flatMap { $0.isIdentity ? nil : $0 }
        self.routeSinks = routeSinks
        self.name = name
        self.source = source
        self.sinks = sinks
        self.metrics = sinks.map {
            SinkMetrics(pipe: name, sink: $0.name, factory: options.metricsFactory ?? MetricsSystem.factory)
        }
        self.deadLetters = deadLetters
        self.options = options
        self.sourceLatency = SourceLatency(pipe: name, factory: options.metricsFactory ?? MetricsSystem.factory)
        var stats = Stats()
        stats.sinks = sinks.map { SinkStats(name: $0.name) }
        self.statsBox = Mutex(stats)
        self.logger = logger.forPipe(name)
    }

    /// Sinks with default delivery settings, named after their descriptions.
    public convenience init(
        name: String, source: any ChangeSource, sinks: [any EventSink], options: Options = Options(), logger: Logger
    ) {
        self.init(
            name: name, source: source, sinks: sinks.map { PipeSink(name: $0.description, sink: $0) },
            options: options, logger: logger)
    }

    public var stats: Stats {
        var stats = statsBox.withLock { $0 }
        stats.source = (source as? any CountsMessages)?.counters.stats
        return stats
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await runPipe()
        } onGracefulShutdown: { [self] in
            stop()
        }
    }

    /// Stops capturing; what was captured is still delivered and confirmed before `run` returns.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        source.requestStop()
    }

    /// Whether `stop()` was called.
    public var isStopping: Bool { stopping.load(ordering: .relaxed) }

    private func runPipe() async throws {
        // Stopped before it started (PostgreSQL or a sink unreachable at start): nothing was
        // read, so there is nothing to deliver; end at once instead of retrying.
        guard try await withRetries("start source", untilStopped: true, { try await source.start() }) != nil else {
            logger.info("pipe stopped before it started")
            return
        }
        // From here the source runs threads of its own: every way out ends them and closes the
        // sinks first (an error may end the process next).
        let streamed: Bool
        do {
            streamed = try await openTargetsAndStream()
        } catch {
            await finishSource()
            await closeSinks()
            throw error
        }
        await finishSource()
        await closeSinks()
        guard streamed else {
            logger.info("pipe stopped before it started")
            return
        }
        let final = stats
        logger.info(
            "pipe stopped",
            metadata: ["events": "\(final.events)", "confirmed_lsn": "\(final.confirmed.map { "\($0)" } ?? "-")"])
    }

    /// Opens the sinks and the dead-letter target, then delivers until the source ends; false
    /// when the pipe was stopped while a sink could not be opened yet.
    private func openTargetsAndStream() async throws -> Bool {
        for sink in sinks {
            guard
                try await withRetries(
                    "open \(sink.sink.description)", untilStopped: true, { try await sink.sink.open() })
                    != nil
            else { return false }
        }
        if let deadLetters {
            try await withRetries("open dead-letter target \(deadLetters.description)") { try await deadLetters.open() }
        }
        logger.info(
            "pipe running",
            metadata: [
                "sinks": "\(sinks.map(\.sink.description))",
                "dead_letters": "\(deadLetters?.description ?? "-")",
            ])
        // With processors, the next group (when the source has it ready) is transformed while the
        // current one is delivered.
        var ready: [EventBatch]?
        while true {
            let group: [EventBatch]
            if let next = ready {
                group = next
                ready = nil
            } else {
                guard let first = try await source.next() else { break }
                group = prepareGroup(startingWith: first)
            }
            let bytes = group.reduce(0) { $0 + $1.bytes.count }
            try await deadLetterRefused(group)
            if transform != nil {
                ready = try await deliverPreparingNext(group)
            } else {
                try await deliver(group)
            }
            let checkpoint = group.reversed().lazy.compactMap(\.checkpoint).first
            source.acknowledge(through: group[group.count - 1].sequence, checkpoint: checkpoint)
            let events = group.reduce(0) { $0 + $1.eventCount }
            options.eventBuffer?.append(group)
            let total = statsBox.withLock { stats in
                stats.events += UInt64(events)
                stats.bytes += UInt64(bytes)
                stats.deliveries += 1
                stats.lastDeliveryAt = .now
                if let checkpoint { stats.confirmed = checkpoint }
                return stats.events
            }
            if let limit = options.stopAfterEvents, total >= limit, !isStopping {
                logger.info("delivered \(total) events (--stop-after-events \(limit)): stopping")
                stop()
            }
        }
        return true
    }

    /// Sends the messages the source refused (bad input) to the dead-letter target; the group's
    /// acknowledgement then covers them.
    private func deadLetterRefused(_ group: [EventBatch]) async throws {
        let refused = group.flatMap(\.refused)
        guard let first = refused.first else { return }
        guard let deadLetters else {
            logger.error(
                "the source refused \(refused.count) messages (\(first.reason)) and the pipe has no dead_letter target to keep them: \(refused.map { String(decoding: $0.record, as: UTF8.self) })"
            )
            return
        }
        logger.error(
            "the source refused \(refused.count) messages: \(first.reason); sent to \(deadLetters.description)")
        try await deadLetters.send(
            refused.map { DeadLetter(sink: "source", reason: $0.reason, attempts: 1, event: $0.record[...]) })
        statsBox.withLock { stats in stats.deadLetters += UInt64(refused.count) }
    }

    /// Ends the source's threads; a message source's lag gauges go with it (a stopped pipe
    /// shows no stale backlog; its counts stay in the status).
    private func finishSource() async {
        await source.finish()
        (source as? any CountsMessages)?.counters.close()
    }

    private func closeSinks() async {
        for sink in sinks { await sink.sink.close() }
        await deadLetters?.close()
    }

    /// Delivers to every sink concurrently; each sink retries on its own (see
    /// `PipeRunner+Delivery.swift`), so the group is done when every sink has it.
    func deliver(_ group: [EventBatch]) async throws {
        if sinks.count == 1 {
            try await deliver(group, to: 0)
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for index in sinks.indices {
                tasks.addTask { [self] in try await deliver(group, to: index) }
            }
            try await tasks.waitForAll()
        }
    }

    /// Retries retriable failures with exponential backoff and jitter until they succeed, a
    /// non-retriable error occurs, or the task is cancelled.
    func withRetries<T>(_ what: @autoclosure () -> String, _ body: () async throws -> T) async throws -> T {
        // Never nil: without `untilStopped` only success ends the loop.
        try await withRetries(what(), untilStopped: false, body)!
    }

    /// As `withRetries`; with `untilStopped`, a `stop()` also ends the retries (within 100 ms
    /// of a backoff pause), returning nil. `what` is only formatted when something is logged.
    func withRetries<T>(_ what: @autoclosure () -> String, untilStopped: Bool, _ body: () async throws -> T)
        async throws -> T?
    {
        var delay = options.initialRetryDelay
        var attempt = 0
        while true {
            if untilStopped && isStopping { return nil }
            do {
                let result = try await body()
                if attempt > 0 { logger.info("\(what()): recovered after \(attempt) retries") }
                return result
            } catch {
                recordError("\(what()): \(error)")
                guard Self.isRetriable(error), !Task.isCancelled else { throw error }
                if untilStopped && isStopping { return nil }
                attempt += 1
                statsBox.withLock { $0.retries += 1 }
                logger.warning("\(what()) failed (attempt \(attempt)): \(error); retrying in \(delay)")
                let until = ContinuousClock.now + delay.jittered()
                while ContinuousClock.now < until {
                    if untilStopped && isStopping { return nil }
                    try await Task.sleep(for: min(.milliseconds(100), until - ContinuousClock.now))
                }
                delay = min(delay * 2, options.maxRetryDelay)
            }
        }
    }

    func recordError(_ message: String) {
        statsBox.withLock { stats in
            stats.lastError = message
            stats.lastErrorAt = .now
        }
    }

    static func isRetriable(_ error: any Error) -> Bool {
        if let error = error as? SinkError { return error.isRetriable }
        if let error = error as? any RetriableError { return error.isRetriable }
        return false
    }
}

extension Duration {
    func jittered() -> Duration {
        self * Double.random(in: 0.8...1.2)
    }
}
