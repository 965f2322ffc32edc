import BridgeCore
import Foundation
import Logging
import Pipeline
import PostgresSource
import ServiceLifecycle

/// Runs the pipes of the process and changes them at run time (the HTTP API's pipe management):
/// STOPPED → RUNNING → DROPPED.
///
/// Pipes come from the configuration file and from `pgbridge.pipes` (created through the API).
/// The state the API sets (running or stopped) is stored there too, so it survives restarts.
/// Without the API (`keepsRunning` false) the supervisor behaves like a plain group of pipes:
/// it returns when every pipe ended and throws the first pipe failure.
///
/// The decisions are a value (`StateMachine`, unit-tested transition by transition); this actor
/// carries them out. Every pipe runs as a child task of the task group that `run()` owns, so
/// cancelling `run()` cancels every pipe.
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
        /// A run to add to the task group.
        case launch(PipeRun)
        case ended(PipeRun, Outcome)
        case shutdown
        /// Start the shutdown grace period's timer.
        case armShutdownGrace
        /// The shutdown grace period is over: cancel what still runs.
        case shutdownGraceOver
        /// Look at the state machine again (it may have finished).
        case wake
    }

    /// What the supervisor keeps of a pipe besides its lifecycle (which is the state machine's).
    struct Entry {
        var config: PipeConfig
        var origin: Origin
        var definition: String?
        var runner: PipeRunner?
        var run: PipeRun?
        var buffer: PipeEventBuffer?
        var lastStats: PipeRunner.Stats?
        var role: Role?
    }

    let factory: PipeFactory
    let store: PipeStore?
    private let bufferEvents: Int
    private let bufferBytes: Int
    private let runnerOptions: PipeRunner.Options
    /// How long a stop request waits for the pipe's delivery before cancelling it.
    public var stopGracePeriod: Duration = .seconds(10)
    /// How long shutting down waits for the pipes' deliveries before cancelling them.
    public var shutdownGracePeriod: Duration = .seconds(8)
    let logger: Logger
    var machine: StateMachine
    var entries: [String: Entry] = [:]
    var order: [String] = []
    /// Pipes (and slots) an API request is changing: other requests on them get a conflict
    /// instead of interleaving at the awaits.
    var busy: Set<String> = []
    var reservedSlots: Set<String> = []
    var started = false
    var startWaiters: [CheckedContinuation<Void, Never>] = []
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
        self.machine = StateMachine(keepsRunning: keepsRunning)
        self.bufferEvents = bufferEvents
        self.bufferBytes = bufferBytes
        self.runnerOptions = runnerOptions
        self.logger = logger
        (events, eventsContinuation) = AsyncStream<Event>.makeStream()
        for pipe in config.pipes {
            entries[pipe.name] = Entry(config: pipe, origin: .config)
            machine.add(pipe.name, desired: .running)
            order.append(pipe.name)
        }
    }

    // MARK: Service

    public func run() async throws {
        // API requests wait until the stored pipes are known and started (see `untilStarted`).
        defer { markStarted() }
        try await loadStoredPipes()
        for name in order where machine.pipes[name]?.desired == .running {
            do {
                try launch(name)
            } catch {
                if !machine.keepsRunning { throw error }
                machine.launchFailed(name, PipeFailure(error))
                logger.error("pipe \(name) cannot start: \(error)")
            }
        }
        markStarted()
        let initial = machine.launchedInitialPipes()
        if initial.contains(where: { if case .finish = $0 { true } else { false } }) { return }
        try await withGracefulShutdownHandler {
            try await superviseUntilDone()
        } onGracefulShutdown: { [self] in
            Task { await self.shutdown() }
        }
    }

    /// Runs the pipes as children of one task group until the state machine says to finish.
    private func superviseUntilDone() async throws {
        let continuation = eventsContinuation
        let failure: PipeFailure? = await withDiscardingTaskGroup(returning: PipeFailure?.self) { group in
            for await event in events {
                switch event {
                case .launch(let run):
                    group.addTask {
                        let outcome = await run.execute()
                        continuation.yield(.ended(run, outcome))
                    }
                case .ended(let run, let outcome):
                    runEnded(run, outcome)
                case .shutdown:
                    perform(machine.shutdown())
                case .armShutdownGrace:
                    // A pipe whose sink is down would never finish its delivery: after the grace
                    // period it is cancelled (nothing of it was confirmed, so it is sent again
                    // after the restart).
                    let grace = shutdownGracePeriod
                    group.addTask {
                        guard (try? await Task.sleep(for: grace)) != nil else { return }
                        continuation.yield(.shutdownGraceOver)
                    }
                case .shutdownGraceOver:
                    cancelRunsAfterShutdownGrace()
                case .wake:
                    break
                }
                if machine.finished {
                    group.cancelAll()  // a grace timer that is still waiting
                    return machine.firstFailure
                }
            }
            // `run()` was cancelled: stop every pipe (cancelling alone does not end a pipe that
            // waits for events); the group waits for them.
            machine.cancelled()
            for entry in entries.values { entry.runner?.stop() }
            return nil
        }
        if let failure { throw failure.error }
    }

    /// A run ended: what the state machine makes of it (a run ended by a stop request is
    /// processed by `stopRun`, and its end event is then stale).
    private func runEnded(_ run: PipeRun, _ outcome: Outcome) {
        if var entry = entries[run.name], entry.run === run {
            entry.lastStats = entry.runner?.stats ?? entry.lastStats
            entry.runner = nil
            entry.run = nil
            entries[run.name] = entry
        }
        perform(machine.ended(run.name, generation: run.generation, outcome))
    }

    /// Carries out the state machine's actions; what needs the task group goes to the run loop.
    private func perform(_ actions: [StateMachine.Action]) {
        for action in actions {
            switch action {
            case .relaunch(let name):
                do {
                    try launch(name, yielding: true)
                } catch {
                    machine.launchFailed(name, PipeFailure(error))
                }
            case .reportLeaseLost(_, let failure):
                logger.warning("\(failure)")
            case .reportFailure(let name, let failure):
                // Without the API or wire server the process ends with this error (and its exit
                // code); with them it keeps running, so the log must say it.
                logger.error(
                    Logger.Message(
                        stringLiteral:
                            "pipe \(name) stopped after an error: \(failure). Once it is fixed, start the pipe again "
                            + "(POST /v1/pipes/\(name)/start) or restart pgbridge"))
            case .stopAll(let names):
                for name in names { entries[name]?.runner?.stop() }
                eventsContinuation.yield(.armShutdownGrace)
            case .finish:
                eventsContinuation.yield(.wake)  // the run loop sees `machine.finished` and returns
            }
        }
    }

    /// Stops every pipe (each drains and confirms what it delivered); `run` then returns.
    public func shutdown() {
        // The run loop carries it out: it owns the task group.
        eventsContinuation.yield(.shutdown)
    }

    private func cancelRunsAfterShutdownGrace() {
        for name in order {
            guard let run = entries[name]?.run, !run.isCancelled else { continue }
            logger.warning(
                "pipe \(name) did not finish its delivery within \(shutdownGracePeriod) of shutting down (a sink is down?): cancelling it; unconfirmed events are sent again after the restart"
            )
            run.cancel()
        }
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
            if entries[record.name] != nil {
                machine.setDesired(record.name, record.running ? .running : .stopped)
                continue
            }
            guard let definition = record.definition else { continue }  // a config pipe no longer configured
            do {
                let pipe = try BridgeConfig.parsePipe(
                    text: definition, registry: factory.registry, environment: Self.pipeEnvironment, trust: apiTrust)
                try checkConflicts(pipe)
                entries[pipe.name] = Entry(config: pipe, origin: .api, definition: definition)
                machine.add(pipe.name, desired: record.running ? .running : .stopped)
                order.append(pipe.name)
            } catch {
                logger.error("stored pipe \(record.name) is not valid any more and is not started: \(error)")
            }
        }
    }

    // MARK: Runs

    /// Builds the pipe's runner and hands a run of it to the task group. `yielding`: under
    /// `ha`, after this replica lost the pipe, let a standby take it first.
    func launch(_ name: String, yielding: Bool = false) throws {
        guard var entry = entries[name], entry.run == nil else { return }
        if entry.buffer == nil, bufferEvents > 0 {
            entry.buffer = PipeEventBuffer(capacity: bufferEvents, byteCapacity: bufferBytes)
        }
        var options = runnerOptions
        options.eventBuffer = entry.buffer
        let runner = try factory.runner(
            for: entry.config, source: try factory.makeSource(for: entry.config), options: options)
        guard let generation = machine.launch(name) else {
            throw ControlError.unavailable("pgbridge is shutting down: pipe \(name) is not started")
        }
        let lease = factory.config.ha.map {
            PipeLease(pipe: entry.config, postgres: factory.config.postgres, ha: $0, logger: logger)
        }
        let run = PipeRun(name: name, generation: generation) { [self] in
            if let lease {
                try await runOwned(name, generation: generation, runner: runner, lease: lease, yielding: yielding)
            } else {
                try await runner.run()
            }
        }
        entry.runner = runner
        entry.run = run
        entry.role = lease == nil ? nil : .standby
        entries[name] = entry
        eventsContinuation.yield(.launch(run))
    }

    /// Under `ha`: waits until this replica owns the pipe, then runs it while the lease holds.
    /// A lease lost (its connection broke) stops the pipe with `PipeLease.Lost`.
    private nonisolated func runOwned(
        _ name: String, generation: Int, runner: PipeRunner, lease: PipeLease, yielding: Bool = false
    ) async throws {
        do {
            try await runWhileOwned(name, generation: generation, runner: runner, lease: lease, yielding: yielding)
        } catch {
            await lease.release()
            throw error
        }
        await lease.release()
    }

    private nonisolated func runWhileOwned(
        _ name: String, generation: Int, runner: PipeRunner, lease: PipeLease, yielding: Bool
    ) async throws {
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
        guard entries[name]?.run?.generation == generation else { return }
        entries[name]?.role = role
    }

    /// Stops a pipe's run: once what it captured is delivered and confirmed, or, when that
    /// takes longer than `stopGracePeriod` (a sink is down), by cancelling it.
    func stopRun(_ name: String) async {
        guard let entry = entries[name], let runner = entry.runner, let run = entry.run else { return }
        runner.stop()
        // Nothing of a cancelled delivery was confirmed, so it is sent again when the pipe starts.
        let grace = stopGracePeriod
        let logger = logger
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await run.waitUntilEnded()
                return true
            }
            group.addTask {
                guard (try? await Task.sleep(for: grace)) != nil else { return false }
                logger.warning(
                    "pipe \(name) did not finish its delivery within \(grace) of the stop request (a sink is down?): cancelling it; unconfirmed events are sent again when it starts"
                )
                run.cancel()
                return false
            }
            // Until the run has ended (after a cancel too): its outcome is processed below.
            while let ended = await group.next() {
                if ended {
                    group.cancelAll()
                    break
                }
            }
        }
        // The end event may come later: the stop request processes the run's end itself (the
        // state machine then ignores the event as stale), so that the pipe is stopped when the
        // request returns and a start right after it works.
        if entries[name]?.run === run { runEnded(run, run.outcome ?? .cancelled) }
    }
}
