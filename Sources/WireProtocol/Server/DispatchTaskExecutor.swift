import Dispatch

/// Runs the wire server's tasks on a dispatch queue of their own, so that sessions keep
/// answering when Swift's small cooperative pool is busy or blocked elsewhere in the process.
final class DispatchTaskExecutor: TaskExecutor {
    private let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label, attributes: .concurrent)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }
}
