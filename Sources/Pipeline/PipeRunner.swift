import BridgeCore
import Logging
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

        public init() {}
    }

    /// Counters for logs, tests and (later) metrics.
    public struct Stats: Sendable {
        public var events: UInt64 = 0
        public var bytes: UInt64 = 0
        public var deliveries: UInt64 = 0
        public var retries: UInt64 = 0
        public var confirmed: LSN?
    }

    public let name: String
    let source: any ChangeSource
    let sinks: [any EventSink]
    let options: Options
    let logger: Logger
    private let statsBox = Mutex(Stats())
    private let stopping = Atomic<Bool>(false)

    public init(
        name: String, source: any ChangeSource, sinks: [any EventSink], options: Options = Options(), logger: Logger
    ) {
        self.name = name
        self.source = source
        self.sinks = sinks
        self.options = options
        var logger = logger
        logger[metadataKey: "pipe"] = "\(name)"
        self.logger = logger
    }

    public var stats: Stats { statsBox.withLock { $0 } }

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

    private var isStopping: Bool { stopping.load(ordering: .relaxed) }

    private func runPipe() async throws {
        try await withRetries("start source") { try await source.start() }
        for sink in sinks {
            try await withRetries("open \(sink.description)") { try await sink.open() }
        }
        logger.info("pipe running", metadata: ["sinks": "\(sinks.map(\.description))"])
        do {
            while let first = try await source.next() {
                var group = [first]
                var bytes = first.bytes.count
                while group.count < options.maxGroupBatches, bytes < options.maxGroupBytes,
                    let more = source.nextIfReady()
                {
                    group.append(more)
                    bytes += more.bytes.count
                }
                try await deliver(group)
                let checkpoint = group.reversed().lazy.compactMap(\.checkpoint).first
                source.acknowledge(through: group[group.count - 1].sequence, checkpoint: checkpoint)
                let events = group.reduce(0) { $0 + $1.eventCount }
                let total = statsBox.withLock { stats in
                    stats.events += UInt64(events)
                    stats.bytes += UInt64(bytes)
                    stats.deliveries += 1
                    if let checkpoint { stats.confirmed = checkpoint }
                    return stats.events
                }
                if let limit = options.stopAfterEvents, total >= limit, !isStopping {
                    logger.info("delivered \(total) events (--stop-after-events \(limit)): stopping")
                    stop()
                }
            }
        } catch {
            await source.finish()
            for sink in sinks { await sink.close() }
            throw error
        }
        await source.finish()
        for sink in sinks { await sink.close() }
        let final = stats
        logger.info(
            "pipe stopped",
            metadata: ["events": "\(final.events)", "confirmed_lsn": "\(final.confirmed.map { "\($0)" } ?? "-")"])
    }

    /// Delivers to every sink concurrently; a failing sink is retried with backoff (its events
    /// stay unconfirmed meanwhile, so nothing is lost).
    private func deliver(_ group: [EventBatch]) async throws {
        if sinks.count == 1 {
            let sink = sinks[0]
            try await withRetries("deliver to \(sink.description)") { try await sink.deliver(group) }
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for sink in sinks {
                tasks.addTask { [self] in
                    try await withRetries("deliver to \(sink.description)") { try await sink.deliver(group) }
                }
            }
            try await tasks.waitForAll()
        }
    }

    /// Retries retriable failures with exponential backoff and jitter until they succeed, a
    /// non-retriable error occurs, or the task is cancelled.
    private func withRetries(_ what: String, _ body: () async throws -> Void) async throws {
        var delay = options.initialRetryDelay
        var attempt = 0
        while true {
            do {
                try await body()
                if attempt > 0 { logger.info("\(what): recovered after \(attempt) retries") }
                return
            } catch {
                guard Self.isRetriable(error), !Task.isCancelled else { throw error }
                attempt += 1
                statsBox.withLock { $0.retries += 1 }
                logger.warning("\(what) failed (attempt \(attempt)): \(error); retrying in \(delay)")
                try await Task.sleep(for: delay.jittered())
                delay = min(delay * 2, options.maxRetryDelay)
            }
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
