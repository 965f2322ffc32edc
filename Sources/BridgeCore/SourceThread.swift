import Foundation
import Logging

/// The skeleton every source that reads with a blocking client shares (replication, notify,
/// outbox, table snapshot): one named thread running the source's loop, the bounded queue it
/// hands batches to, a stop request, acknowledgements, and an exit the pipeline awaits.
///
/// Everything the thread waits for (an acknowledgement, the end of a pause, a stop) is signalled
/// through one condition: nothing polls by sleeping, and a stop wakes every wait at once.
public final class SourceThread: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is read and written only while `condition` is locked.
    private let condition = NSCondition()
    private var acknowledgedSequence: UInt64 = 0
    private var stopFlag = false
    private var finishFlag = false
    private var started = false
    private var exited = false
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []

    /// The thread's name (companion threads get it as a prefix).
    public let name: String
    /// Batches waiting for the pipeline.
    public let queue: BatchQueue

    public init(name: String, queueCapacity: Int = 4) {
        self.name = name
        queue = BatchQueue(capacity: queueCapacity)
    }

    /// What ended `waitForAcknowledgement`.
    public enum AcknowledgementWait: Sendable, Equatable {
        case acknowledged
        /// The pipeline finished: nothing more will be acknowledged.
        case finishing
        case timedOut
    }

    // MARK: - Thread

    /// Starts `body` on the source's thread; `finish()` returns once it has returned.
    public func start(stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) {
        condition.locked { started = true }
        let thread = Thread { [self] in
            body()
            let waiters = condition.locked {
                exited = true
                condition.broadcast()
                defer { exitWaiters = [] }
                return exitWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.name = name
        if let stackSize { thread.stackSize = stackSize }
        thread.start()
    }

    /// Starts a helper thread (a monitor, a timer) that runs until the stop request; `finish()`
    /// does not wait for it, so a helper stuck in a connect never delays a shutdown.
    public func startCompanion(_ suffix: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = "\(name)-\(suffix)"
        thread.start()
    }

    // MARK: - Pipeline side

    public func acknowledge(through sequence: UInt64) {
        condition.locked {
            guard sequence > acknowledgedSequence else { return }
            acknowledgedSequence = sequence
            condition.broadcast()
        }
    }

    /// Asks the thread to stop reading; what it already handed out is still delivered.
    public func requestStop() {
        condition.locked {
            stopFlag = true
            condition.broadcast()
        }
    }

    /// Stops the thread for good (the pipeline consumes and acknowledges nothing more) and
    /// waits until it has returned.
    public func finish() async {
        condition.locked {
            stopFlag = true
            finishFlag = true
            condition.broadcast()
        }
        queue.finish()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = condition.locked {
                if exited || !started { return true }
                exitWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    // MARK: - Thread side

    public var stopRequested: Bool { condition.locked { stopFlag } }
    /// The pipeline is gone: waiting for acknowledgements is pointless.
    public var finishRequested: Bool { condition.locked { finishFlag } }
    public var acknowledged: UInt64 { condition.locked { acknowledgedSequence } }

    /// Hands `batch` to the pipeline, waiting for room as long as the pipeline runs.
    public func put(_ batch: EventBatch) {
        while !queue.put(batch, timeout: .milliseconds(500)) {
            if finishRequested { return }
        }
    }

    /// Waits until every batch through `sequence` is acknowledged, the pipeline finishes, or
    /// `timeout` (nil: no limit) passes.
    public func waitForAcknowledgement(through sequence: UInt64, timeout: Duration? = nil) -> AcknowledgementWait {
        let deadline = timeout.map { Date().addingTimeInterval($0.seconds) }
        condition.lock()
        defer { condition.unlock() }
        while acknowledgedSequence < sequence {
            if finishFlag { return .finishing }
            if let deadline {
                if !condition.wait(until: deadline) {
                    return acknowledgedSequence >= sequence ? .acknowledged : .timedOut
                }
            } else {
                condition.wait()
            }
        }
        return .acknowledged
    }

    /// Waits `duration`, or less when the pipeline finishes (a stop does not end it: for waits
    /// whose outcome still matters while the thread drains).
    public func wait(_ duration: Duration) {
        let deadline = Date().addingTimeInterval(duration.seconds)
        condition.lock()
        defer { condition.unlock() }
        while !finishFlag {
            if !condition.wait(until: deadline) { break }
        }
    }

    /// Waits `duration` or until a stop is requested; false when stopped.
    @discardableResult
    public func pause(_ duration: Duration) -> Bool {
        let deadline = Date().addingTimeInterval(duration.seconds)
        condition.lock()
        defer { condition.unlock() }
        while !stopFlag {
            if !condition.wait(until: deadline) { break }
        }
        return !stopFlag
    }
}

extension NSCondition {
    fileprivate func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

extension SourceThread {
    /// The loop of a source that reads a broker over one connection at a time: `connection`
    /// connects and reads until a stop (it returns) or an error (it throws). After an error the
    /// loop logs it with what happens meanwhile and connects again after a pause that doubles
    /// from 0.5 s to 30 s, and starts over at 0.5 s once a connection handed out a batch
    /// (`connection` sets its flag): an error that comes back right after connecting (refused
    /// rights, a missing queue) is not retried in a tight loop. Ends `next()` once done: after
    /// a stop, what was handed out is delivered and confirmed first.
    public func runReconnecting(
        _ what: String, meanwhile: String, logger: Logger, _ connection: (_ handedOut: inout Bool) throws -> Void
    ) {
        var delay = Duration.milliseconds(500)
        defer { queue.finish() }
        while !stopRequested {
            var handedOut = false
            do {
                try connection(&handedOut)
                return
            } catch {
                if handedOut { delay = .milliseconds(500) }
                logger.error("\(what): \(error); connecting again in \(delay) (\(meanwhile))")
                guard pause(delay) else { break }
                delay = min(delay * 2, .seconds(30))
            }
        }
    }
}

/// A source whose reading runs on a `SourceThread`: the pipeline side comes from the thread.
public protocol ThreadedChangeSource: ChangeSource {
    var thread: SourceThread { get }
}

extension ThreadedChangeSource {
    public func next() async throws -> EventBatch? { try await thread.queue.next() }
    public func nextIfReady() -> EventBatch? { thread.queue.poll() }
    public func acknowledge(through sequence: UInt64, checkpoint: LSN?) { thread.acknowledge(through: sequence) }
    public func requestStop() { thread.requestStop() }
    public func finish() async { await thread.finish() }
}
