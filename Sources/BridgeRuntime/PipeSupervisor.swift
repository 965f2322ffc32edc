import BridgeCore
import Foundation
import Logging
import Pipeline
import PostgresSource
import ServiceLifecycle

// One piece (over 400 lines) for now: issue 16 turns it into a `StateMachine` value returning
// actions plus a small executor, which splits it.

/// Runs the pipes of the process and changes them at run time (the HTTP API's pipe management):
/// STOPPED → RUNNING → DROPPED.
///
/// Pipes come from the configuration file and from `pgbridge.pipes` (created through the API).
/// The state the API sets (running or stopped) is stored there too, so it survives restarts.
/// Without the API (`keepsRunning` false) the supervisor behaves like a plain group of pipes:
/// it returns when every pipe ended and throws the first pipe failure.
public actor PipeSupervisor: Service {
    public enum State: String, Sendable {
        case running = "RUNNING"
        case stopped = "STOPPED"
        case dropped = "DROPPED"
    }

    public enum Origin: String, Sendable {
        case config
        case api
    }

    /// What the API shows of a pipe.
    public struct Status: Sendable {
        public var name: String
        public var origin: Origin
        public var state: State
        public var config: PipeConfig
        /// The pipe as posted (API pipes), secrets included: redact before showing it.
        public var definition: String?
        public var stats: PipeRunner.Stats?
        /// Why the pipe is not healthy; nil = healthy (or stopped on purpose).
        public var problem: String?
        /// `problem` without error text (for callers without the admin token).
        public var problemSummary: String?
        public var lastError: String?
        /// With `ha`: whether this replica owns the pipe now (nil without `ha`).
        public var role: Role?
    }

    /// A replica's part in a pipe under `ha`.
    public enum Role: String, Sendable {
        /// This replica runs the pipe.
        case owner
        /// Another replica runs it (or is about to); this one takes over when it goes.
        case standby
    }

    /// This replica's name under `ha` (nil without it).
    public nonisolated let replicaID: String?

    public enum ControlError: Error, CustomStringConvertible {
        case notFound(String)
        case conflict(String)
        case invalid(String)
        case unavailable(String)

        public var description: String {
            switch self {
            case .notFound(let message), .conflict(let message), .invalid(let message), .unavailable(let message):
                return message
            }
        }
    }

    private enum Event: Sendable {
        case ended(name: String, generation: Int, error: String?, failure: (any Error)?)
        case wake
    }

    private struct Entry {
        var config: PipeConfig
        var origin: Origin
        var definition: String?
        var desired: State
        var runner: PipeRunner?
        var task: Task<Void, Never>?
        var generation = 0
        var buffer: PipeEventBuffer?
        var failure: String?
        var lastStats: PipeRunner.Stats?
        var role: Role?
    }

    private let factory: PipeFactory
    private let store: PipeStore?
    private let keepsRunning: Bool
    private let bufferEvents: Int
    private let bufferBytes: Int
    private let runnerOptions: PipeRunner.Options
    /// How long a stop request waits for the pipe's delivery before cancelling it.
    public var stopGracePeriod: Duration = .seconds(10)
    /// How long shutting down waits for the pipes' deliveries before cancelling them.
    public var shutdownGracePeriod: Duration = .seconds(8)
    private let logger: Logger
    private var entries: [String: Entry] = [:]
    private var order: [String] = []
    private var nextGeneration = 0
    /// Pipes (and slots) an API request is changing: other requests on them get a conflict
    /// instead of interleaving at the awaits.
    private var busy: Set<String> = []
    private var reservedSlots: Set<String> = []
    private var shuttingDown = false
    private var started = false
    private var startWaiters: [CheckedContinuation<Void, Never>] = []
    private let events: AsyncStream<Event>
    private let eventsContinuation: AsyncStream<Event>.Continuation

    /// `store` nil: nothing is loaded or saved (no API). `keepsRunning`: the process serves the
    /// API, so pipes that end or fail stay listed instead of ending the process.
    public init(
        config: BridgeConfig, version: String, store: PipeStore?, keepsRunning: Bool, bufferEvents: Int = 0,
        bufferBytes: Int = 64 << 20,
        runnerOptions: PipeRunner.Options = PipeRunner.Options(), logger: Logger
    ) {
        self.factory = PipeFactory(config: config, version: version, logger: logger)
        self.replicaID = config.ha?.replicaID
        self.store = store
        self.keepsRunning = keepsRunning
        self.bufferEvents = bufferEvents
        self.bufferBytes = bufferBytes
        self.runnerOptions = runnerOptions
        self.logger = logger
        (events, eventsContinuation) = AsyncStream<Event>.makeStream()
        for pipe in config.pipes {
            entries[pipe.name] = Entry(config: pipe, origin: .config, desired: .running)
            order.append(pipe.name)
        }
    }

    // MARK: Service

    public func run() async throws {
        // API requests wait until the stored pipes are known and started (see `untilStarted`).
        defer { markStarted() }
        try await loadStoredPipes()
        for name in order where entries[name]?.desired == .running {
            do {
                try startRunner(name)
            } catch {
                if !keepsRunning { throw error }
                entries[name]?.failure = "\(error)"
                logger.error("pipe \(name) cannot start: \(error)")
            }
        }
        markStarted()
        if order.isEmpty && !keepsRunning { return }
        try await withGracefulShutdownHandler {
            try await superviseUntilDone()
        } onGracefulShutdown: { [self] in
            Task { await self.shutdown() }
        }
    }

    private func superviseUntilDone() async throws {
        var firstFailure: (any Error)?
        for await event in events {
            if case .ended(let name, let generation, let error, let failure) = event,
                var entry = entries[name], entry.generation == generation
            {
                entry.lastStats = entry.runner?.stats ?? entry.lastStats
                entry.runner = nil
                entry.task = nil
                if failure is PipeLease.Lost, entry.desired == .running, !shuttingDown {
                    // Under `ha`, a replica that lost a pipe stands by for it again.
                    logger.warning("\(error ?? "")")
                    entries[name] = entry
                    do {
                        try startRunner(name, yielding: true)
                    } catch {
                        entries[name]?.failure = "\(error)"
                    }
                    continue
                }
                entry.failure = failure is CancellationError ? nil : error
                if error == nil, entry.desired == .running, !shuttingDown { entry.desired = .stopped }
                entries[name] = entry
                if let failure, !(failure is CancellationError), keepsRunning {
                    // Without the API or wire server the process ends with this error (and its
                    // exit code); with them it keeps running, so the log must say it.
                    logger.error(
                        Logger.Message(
                            stringLiteral:
                                "pipe \(name) stopped after an error: \(failure). Once it is fixed, start the pipe again "
                                + "(POST /v1/pipes/\(name)/start) or restart pgbridge"))
                }
                if let failure, !(failure is CancellationError), !keepsRunning, firstFailure == nil {
                    firstFailure = failure
                    shutdown()
                }
            }
            let alive = entries.values.contains { $0.task != nil }
            if !alive && (shuttingDown || !keepsRunning) { break }
        }
        if let firstFailure { throw firstFailure }
    }

    /// Stops every pipe (each drains and confirms what it delivered); `run` then returns.
    public func shutdown() {
        shuttingDown = true
        for entry in entries.values { entry.runner?.stop() }
        // A pipe whose sink is down would never finish its delivery: after the grace period it
        // is cancelled (nothing of it was confirmed, so it is sent again after the restart).
        let running = entries.values.compactMap { entry in entry.task.map { (entry.config.name, $0) } }
        if !running.isEmpty {
            let grace = shutdownGracePeriod
            let logger = logger
            Task {
                try? await Task.sleep(for: grace)
                for (name, task) in running where !task.isCancelled {
                    logger.warning(
                        "pipe \(name) did not finish its delivery within \(grace) of shutting down (a sink is down?): cancelling it; unconfirmed events are sent again after the restart"
                    )
                    task.cancel()
                }
            }
        }
        eventsContinuation.yield(.wake)
    }

    private func loadStoredPipes() async throws {
        guard let store else { return }
        var delay = Duration.milliseconds(500)
        var records: [PipeStore.Record] = []
        while true {
            do {
                records = try await store.load()
                break
            } catch {
                logger.warning("cannot read pgbridge.pipes (\(error)); retrying in \(delay)")
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
        for record in records {
            if var entry = entries[record.name] {
                entry.desired = record.running ? .running : .stopped
                entries[record.name] = entry
                continue
            }
            guard let definition = record.definition else { continue }  // a config pipe no longer configured
            do {
                let pipe = try BridgeConfig.parsePipe(
                    text: definition, environment: Self.pipeEnvironment, trust: apiTrust)
                try checkConflicts(pipe)
                entries[pipe.name] = Entry(
                    config: pipe, origin: .api, definition: definition, desired: record.running ? .running : .stopped)
                order.append(pipe.name)
            } catch {
                logger.error("stored pipe \(record.name) is not valid any more and is not started: \(error)")
            }
        }
    }

    // MARK: Control

    /// Returns once `run` has loaded the stored pipes and started them (or gave up), so that
    /// the API never answers from a half-loaded list.
    private func untilStarted() async {
        if started { return }
        await withCheckedContinuation { startWaiters.append($0) }
    }

    private func markStarted() {
        started = true
        let waiters = startWaiters
        startWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    public func status(_ name: String) async -> Status? {
        await untilStarted()
        return snapshot(name)
    }

    public func statuses() async -> [Status] {
        await untilStarted()
        return order.compactMap(snapshot)
    }

    public func buffer(_ name: String) async -> PipeEventBuffer? {
        await untilStarted()
        return entries[name]?.buffer
    }

    private func snapshot(_ name: String) -> Status? {
        guard let entry = entries[name] else { return nil }
        let stats = entry.runner?.stats ?? entry.lastStats
        return Status(
            name: name, origin: entry.origin, state: entry.runner != nil ? .running : .stopped, config: entry.config,
            definition: entry.definition, stats: stats, problem: problem(entry, stats: stats),
            problemSummary: problem(entry, stats: stats).map { _ in
                entry.runner == nil
                    ? "pipe \(entry.config.name) stopped after an error" : "pipe \(entry.config.name) is retrying"
            },
            lastError: entry.failure ?? stats?.lastError, role: entry.runner == nil ? nil : entry.role)
    }

    /// Creates a pipe from its JSON definition, stores it and starts it.
    public func create(definition: String) async throws(ControlError) -> Status {
        await untilStarted()
        let pipe: PipeConfig
        do {
            pipe = try BridgeConfig.parsePipe(
                text: definition, environment: Self.pipeEnvironment, trust: apiTrust)
        } catch {
            throw .invalid("\(error)")
        }
        if entries[pipe.name] != nil || busy.contains(pipe.name) {
            throw .conflict("pipe \(pipe.name) already exists")
        }
        let slot: String?
        if case .replication(let source) = pipe.source { slot = source.slot } else { slot = nil }
        if let slot, reservedSlots.contains(slot) {
            throw .conflict("slot \(slot) is being taken by another pipe: each pipe needs its own slot")
        }
        busy.insert(pipe.name)
        if let slot { reservedSlots.insert(slot) }
        defer {
            busy.remove(pipe.name)
            if let slot { reservedSlots.remove(slot) }
        }
        do {
            try checkConflicts(pipe)
            // Builds the sinks once, so that a sink setting only the runtime can check fails here.
            _ = try factory.runner(for: pipe, source: factory.makeSource(for: pipe))
        } catch let error as ControlError {
            throw error
        } catch {
            throw .invalid("\(error)")
        }
        try await save(PipeStore.Record(name: pipe.name, definition: definition, running: true), required: true)
        entries[pipe.name] = Entry(config: pipe, origin: .api, definition: definition, desired: .running)
        order.append(pipe.name)
        do {
            try startRunner(pipe.name)
        } catch {
            entries[pipe.name]?.failure = "\(error)"
        }
        logger.info("pipe \(pipe.name) created through the API")
        return snapshot(pipe.name)!
    }

    public func start(_ name: String) async throws(ControlError) -> Status {
        await untilStarted()
        guard let entry = entries[name] else { throw .notFound("no pipe named \(name)") }
        try claim(name)
        defer { busy.remove(name) }
        if entry.runner == nil {
            try await save(
                PipeStore.Record(name: name, definition: entry.definition, running: true),
                required: entry.origin == .api)
            guard entries[name] != nil else { throw .notFound("no pipe named \(name)") }
            entries[name]?.desired = .running
            do {
                try startRunner(name)
            } catch {
                entries[name]?.failure = "\(error)"
                throw .invalid("pipe \(name) cannot start: \(error)")
            }
            logger.info("pipe \(name) started through the API")
        }
        return snapshot(name)!
    }

    /// Stops the pipe once what it captured is delivered and confirmed.
    public func stop(_ name: String) async throws(ControlError) -> Status {
        await untilStarted()
        guard entries[name] != nil else { throw .notFound("no pipe named \(name)") }
        try claim(name)
        defer { busy.remove(name) }
        return try await stopClaimed(name)
    }

    private func claim(_ name: String) throws(ControlError) {
        guard !busy.contains(name) else {
            throw .conflict("pipe \(name) is being changed by another request: try again when it is done")
        }
        busy.insert(name)
    }

    private func stopClaimed(_ name: String) async throws(ControlError) -> Status {
        guard let entry = entries[name] else { throw .notFound("no pipe named \(name)") }
        try await save(
            PipeStore.Record(name: name, definition: entry.definition, running: false), required: entry.origin == .api)
        entries[name]?.desired = .stopped
        if let runner = entry.runner, let task = entry.task {
            runner.stop()
            // A delivery to a sink that is down would wait forever: after a grace period it is
            // cancelled. Nothing of it was confirmed, so it is sent again when the pipe starts.
            let grace = stopGracePeriod
            let logger = logger
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await task.value }
                group.addTask {
                    guard (try? await Task.sleep(for: grace)) != nil else { return }
                    logger.warning(
                        "pipe \(name) did not finish its delivery within \(grace) of the stop request (a sink is down?): cancelling it; unconfirmed events are sent again when it starts"
                    )
                    task.cancel()
                }
                await group.next()
                group.cancelAll()
            }
            // The end event may not be processed yet: record the stop here too.
            if entries[name]?.generation == entry.generation {
                entries[name]?.lastStats = runner.stats
                entries[name]?.runner = nil
                entries[name]?.task = nil
            }
            logger.info("pipe \(name) stopped through the API")
        }
        return snapshot(name)!
    }

    /// Stops and removes an API pipe; with `dropSlot`, also drops its replication slot.
    public func drop(_ name: String, dropSlot: Bool) async throws(ControlError) -> Status {
        await untilStarted()
        guard let entry = entries[name] else { throw .notFound("no pipe named \(name)") }
        guard entry.origin == .api else {
            throw .conflict(
                "pipe \(name) is defined in the configuration file: remove it there, or stop it with POST /v1/pipes/\(name)/stop"
            )
        }
        try claim(name)
        defer { busy.remove(name) }
        var final = try await stopClaimed(name)
        do {
            try await store?.delete(name: name)
        } catch {
            throw .unavailable("cannot delete pipe \(name) from pgbridge.pipes: \(error)")
        }
        entries[name]?.buffer?.close()
        entries[name] = nil
        order.removeAll { $0 == name }
        if dropSlot, case .replication(let source) = entry.config.source {
            try await dropReplicationSlot(source.slot)
        }
        final.state = .dropped
        logger.info("pipe \(name) dropped through the API\(dropSlot ? " with its slot" : "")")
        return final
    }

    // MARK: Internals

    /// What `${NAME}` may expand to in pipes created through the API: only variables named
    /// What a pipe written through the API may reach: files inside state_dir, tuning properties.
    var apiTrust: ConfigTrust { .api(stateDirectory: factory.config.stateDirectory) }

    /// `PGBRIDGE_PIPE_*`, so that a definition cannot send the process's other secrets
    /// (database password, admin token) to a sink of its choosing.
    static var pipeEnvironment: [String: String] {
        ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("PGBRIDGE_PIPE_") }
    }

    /// `yielding`: under `ha`, after this replica lost the pipe, let a standby take it first.
    private func startRunner(_ name: String, yielding: Bool = false) throws {
        guard var entry = entries[name], entry.runner == nil else { return }
        if entry.buffer == nil, bufferEvents > 0 {
            entry.buffer = PipeEventBuffer(capacity: bufferEvents, byteCapacity: bufferBytes)
        }
        var options = runnerOptions
        options.eventBuffer = entry.buffer
        let runner = try factory.runner(
            for: entry.config, source: factory.makeSource(for: entry.config), options: options)
        nextGeneration += 1
        let generation = nextGeneration
        let continuation = eventsContinuation
        entry.runner = runner
        entry.generation = generation
        entry.failure = nil
        let lease = factory.config.ha.map {
            PipeLease(pipe: entry.config, postgres: factory.config.postgres, ha: $0, logger: logger)
        }
        entry.role = lease == nil ? nil : .standby
        entry.task = Task {
            do {
                if let lease {
                    try await runOwned(name, generation: generation, runner: runner, lease: lease, yielding: yielding)
                } else {
                    try await runner.run()
                }
                continuation.yield(.ended(name: name, generation: generation, error: nil, failure: nil))
            } catch {
                continuation.yield(.ended(name: name, generation: generation, error: "\(error)", failure: error))
            }
        }
        entries[name] = entry
    }

    /// Under `ha`: waits until this replica owns the pipe, then runs it while the lease holds.
    /// A lease lost (its connection broke) stops the pipe with `PipeLease.Lost`.
    private nonisolated func runOwned(
        _ name: String, generation: Int, runner: PipeRunner, lease: PipeLease, yielding: Bool = false
    ) async throws {
        defer { lease.release() }
        guard try await lease.acquire(yielding: yielding, shouldStop: { runner.isStopping }) else { return }
        await setRole(.owner, of: name, generation: generation)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runner.run() }
            group.addTask {
                do {
                    try await lease.watch()
                } catch let lost as PipeLease.Lost {
                    // Stop streaming at once (cancelling alone would not stop a healthy delivery):
                    // another replica may own the slot within a second.
                    runner.stop()
                    throw lost
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func setRole(_ role: Role, of name: String, generation: Int) {
        guard entries[name]?.generation == generation else { return }
        entries[name]?.role = role
    }

    private func checkConflicts(_ pipe: PipeConfig) throws(ControlError) {
        guard case .replication(let source) = pipe.source else { return }
        for other in entries.values {
            if case .replication(let existing) = other.config.source, existing.slot == source.slot,
                other.config.name != pipe.name
            {
                throw .conflict(
                    "slot \(source.slot) is already used by pipe \(other.config.name): each pipe needs its own slot")
            }
        }
    }

    private func save(_ record: PipeStore.Record, required: Bool) async throws(ControlError) {
        guard let store else { return }
        do {
            try await store.save(record)
        } catch {
            if required { throw .unavailable("cannot store pipe \(record.name): \(error)") }
            logger.warning("the state of pipe \(record.name) is not stored and will not survive a restart: \(error)")
        }
    }

    private func dropReplicationSlot(_ slot: String) async throws(ControlError) {
        // The walsender may need a moment to release the slot after the pipe stopped.
        var lastError: (any Error)?
        for _ in 0..<50 {
            do {
                try await DatabaseAdmin.dropSlot(slot, postgres: factory.config.postgres)
                return
            } catch {
                lastError = error
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        throw .unavailable("the pipe was dropped but its slot \(slot) was not: \(lastError.map { "\($0)" } ?? "")")
    }

    private func problem(_ entry: Entry, stats: PipeRunner.Stats?) -> String? {
        if entry.desired == .running, entry.runner == nil, started {
            return "pipe \(entry.config.name) stopped after an error: \(entry.failure ?? "unknown")"
        }
        guard entry.runner != nil, let stats, let errorAt = stats.lastErrorAt else { return nil }
        if let deliveredAt = stats.lastDeliveryAt, deliveredAt > errorAt { return nil }
        guard ContinuousClock.now - errorAt < .seconds(60) else { return nil }
        return "pipe \(entry.config.name) is retrying: \(stats.lastError ?? "")"
    }
}
