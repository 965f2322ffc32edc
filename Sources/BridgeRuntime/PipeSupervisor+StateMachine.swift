import BridgeCore

/// Why a pipe's run ended badly: the one failure type of the supervisor. The original error
/// is kept, because the process's exit code comes from it.
public struct PipeFailure: Error, Sendable, CustomStringConvertible, Equatable {
    public let error: any Error

    public init(_ error: any Error) {
        self.error = (error as? PipeFailure)?.error ?? error
    }

    public var description: String { "\(error)" }

    public static func == (left: PipeFailure, right: PipeFailure) -> Bool { left.description == right.description }
}

extension PipeSupervisor {
    /// How one run of a pipe ended.
    enum Outcome: Sendable, Equatable {
        /// The runner returned (its source ended, or it was stopped and drained).
        case finished
        /// Cancelled (a stop or shutdown that outlived its grace period): nothing failed.
        case cancelled
        /// Under `ha`, the ownership lock was lost.
        case leaseLost(PipeFailure)
        case failed(PipeFailure)
    }

    /// The supervisor's decisions as a value (the postgres-nio and AsyncHTTPClient style): each
    /// input (a pipe launched or ended, a stop, a shutdown) changes the state and returns the
    /// actions the supervisor carries out. No I/O, no clock: every transition is unit-tested.
    struct StateMachine {
        struct Pipe: Equatable {
            /// What the pipe should be doing (the API's start and stop, stored in pgbridge.pipes).
            var desired: State
            /// The generation of the run in progress; nil when the pipe does not run.
            var running: Int?
            /// Why the last run failed (nil after a clean end or a cancellation).
            var failure: PipeFailure?
        }

        enum Action: Equatable {
            /// Under `ha`, after this replica lost the pipe: start it again, yielding to a standby.
            case relaunch(String)
            /// Say that the pipe stopped after an error and how to start it again (the process
            /// keeps serving the API or the wire server).
            case reportFailure(String, PipeFailure)
            /// Say that the ownership lock was lost (the pipe is relaunched).
            case reportLeaseLost(String, PipeFailure)
            /// Ask every running pipe to stop (each drains and confirms what it delivered), and
            /// cancel those still running after the shutdown grace period.
            case stopAll([String])
            /// Nothing runs any more: `run()` returns, throwing the first failure if any.
            case finish(PipeFailure?)
        }

        /// With the API or the wire server the process outlives its pipes; without, the
        /// supervisor ends with the first pipe failure, or once every pipe ended.
        let keepsRunning: Bool
        private(set) var pipes: [String: Pipe] = [:]
        private(set) var shuttingDown = false
        private(set) var firstFailure: PipeFailure?
        private(set) var finished = false
        private var lastGeneration = 0

        init(keepsRunning: Bool) {
            self.keepsRunning = keepsRunning
        }

        var isRunningAny: Bool { pipes.values.contains { $0.running != nil } }

        // MARK: - The pipe list

        mutating func add(_ name: String, desired: State) {
            pipes[name] = Pipe(desired: desired)
        }

        mutating func remove(_ name: String) {
            pipes[name] = nil
        }

        mutating func setDesired(_ name: String, _ state: State) {
            pipes[name]?.desired = state
        }

        // MARK: - Runs

        /// A run of `name` starts: its generation, or nil when the pipe runs already or the
        /// supervisor is shutting down (nothing may start then).
        mutating func launch(_ name: String) -> Int? {
            guard var pipe = pipes[name], pipe.running == nil, !shuttingDown, !finished else { return nil }
            lastGeneration += 1
            pipe.running = lastGeneration
            pipe.failure = nil
            pipes[name] = pipe
            return lastGeneration
        }

        /// The pipe could not be started (its sinks or source could not be built).
        mutating func launchFailed(_ name: String, _ failure: PipeFailure) {
            pipes[name]?.failure = failure
        }

        mutating func ended(_ name: String, generation: Int, _ outcome: Outcome) -> [Action] {
            guard var pipe = pipes[name], pipe.running == generation else { return [] }  // stale
            pipe.running = nil
            var actions: [Action] = []
            switch outcome {
            case .leaseLost(let failure) where pipe.desired == .running && !shuttingDown:
                // Under `ha`, a replica that lost a pipe stands by for it again.
                pipes[name] = pipe
                return [.reportLeaseLost(name, failure), .relaunch(name)]
            case .finished:
                pipe.failure = nil
                // The source ended by itself: the pipe stays stopped until started again.
                if pipe.desired == .running && !shuttingDown { pipe.desired = .stopped }
            case .cancelled:
                pipe.failure = nil
            case .failed(let failure), .leaseLost(let failure):
                pipe.failure = failure
                if keepsRunning {
                    actions.append(.reportFailure(name, failure))
                } else if firstFailure == nil {
                    firstFailure = failure
                    pipes[name] = pipe
                    actions += shutdown()
                }
            }
            pipes[name] = pipe
            return actions + finishIfDone()
        }

        /// Stops every pipe; `run()` finishes once they have ended.
        mutating func shutdown() -> [Action] {
            guard !shuttingDown else { return finishIfDone() }
            shuttingDown = true
            let running = pipes.filter { $0.value.running != nil }.map(\.key).sorted()
            return (running.isEmpty ? [] : [.stopAll(running)]) + finishIfDone()
        }

        /// `run()` was cancelled: nothing starts any more, and it ends once the pipes have.
        mutating func cancelled() {
            shuttingDown = true
            finished = true
        }

        /// `run()` launched what should run: without the API, having nothing to run ends it.
        mutating func launchedInitialPipes() -> [Action] {
            finishIfDone()
        }

        private mutating func finishIfDone() -> [Action] {
            guard !finished, !isRunningAny, shuttingDown || !keepsRunning else { return [] }
            finished = true
            return [.finish(firstFailure)]
        }
    }
}
