import Synchronization

/// One run of a pipe, as a child task of the supervisor's task group: `execute()` runs the
/// work until it ends or `cancel()` is called (then the work is cancelled and its end
/// awaited), and anyone may `waitUntilEnded()`.
final class PipeRun: Sendable {
    let name: String
    let generation: Int
    private let work: @Sendable () async throws -> Void
    private let state = Mutex(State())

    private struct State {
        var cancelRequested = false
        /// The child task that waits for `cancel()`, and whether it is gone already.
        var cancelWatcher: CheckedContinuation<Void, Never>?
        var watcherDone = false
        var ended = false
        var outcome: PipeSupervisor.Outcome?
        var endWaiters: [CheckedContinuation<Void, Never>] = []
    }

    init(name: String, generation: Int, work: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.generation = generation
        self.work = work
    }

    /// Runs the work to its end; a `cancel()` cancels it (the outcome is then `.cancelled`
    /// unless the work failed otherwise on its way out).
    func execute() async -> PipeSupervisor.Outcome {
        let outcome = await withTaskGroup(of: PipeSupervisor.Outcome?.self) { group in
            group.addTask { [self] in
                do {
                    try await work()
                    return .finished
                } catch is CancellationError {
                    return .cancelled
                } catch let lost as PipeLease.Lost {
                    return .leaseLost(PipeFailure(lost))
                } catch {
                    return Task.isCancelled ? .cancelled : .failed(PipeFailure(error))
                }
            }
            group.addTask { [self] in
                await cancelRequested()
                return nil
            }
            var outcome: PipeSupervisor.Outcome = .cancelled
            while let next = await group.next() {
                group.cancelAll()  // the work ended (stop the watcher) or a cancel came (stop the work)
                if let next {
                    outcome = next
                    break
                }
            }
            return outcome
        }
        let waiters = state.withLock { state in
            state.ended = true
            state.outcome = outcome
            defer { state.endWaiters = [] }
            return state.endWaiters
        }
        for waiter in waiters { waiter.resume() }
        return outcome
    }

    func cancel() {
        let watcher = state.withLock { state in
            state.cancelRequested = true
            defer { state.cancelWatcher = nil }
            return state.cancelWatcher
        }
        watcher?.resume()
    }

    var isCancelled: Bool { state.withLock { $0.cancelRequested } }

    /// How the run ended; nil while it runs.
    var outcome: PipeSupervisor.Outcome? { state.withLock { $0.outcome } }

    func waitUntilEnded() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ended = state.withLock {
                if !$0.ended { $0.endWaiters.append(continuation) }
                return $0.ended
            }
            if ended { continuation.resume() }
        }
    }

    /// Returns once `cancel()` was called, or when the watching task is cancelled.
    private func cancelRequested() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock {
                    if $0.cancelRequested || $0.watcherDone { return true }
                    $0.cancelWatcher = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let watcher = state.withLock { state in
                state.watcherDone = true
                defer { state.cancelWatcher = nil }
                return state.cancelWatcher
            }
            watcher?.resume()
        }
    }
}
