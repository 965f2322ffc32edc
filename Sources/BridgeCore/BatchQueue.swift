import Foundation

/// A bounded hand-off from a producer thread (a blocking C client loop) to an async consumer.
///
/// The producer never blocks the cooperative pool: it runs on its own thread and waits with a
/// timeout so it can keep doing periodic work (e.g. replication keepalives) while the queue is
/// full. The consumer awaits without blocking any thread.
public final class BatchQueue: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is read and written only while `condition` is locked.
    private let condition = NSCondition()
    private var items: [EventBatch] = []
    private var head = 0
    private var waiter: CheckedContinuation<EventBatch?, any Error>?
    private var finished = false
    private var failure: (any Error)?
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    private var count: Int { items.count - head }

    /// Producer: true when `put` would not wait.
    public var hasRoom: Bool {
        condition.lock()
        defer { condition.unlock() }
        return count < capacity
    }

    /// Producer: true when everything handed over has been taken by the consumer.
    public var isDrained: Bool {
        condition.lock()
        defer { condition.unlock() }
        return count == 0
    }

    /// Producer: appends when there is room, waiting up to `timeout`; false on timeout.
    public func put(_ batch: EventBatch, timeout: Duration) -> Bool {
        let deadline = Date().addingTimeInterval(timeout.seconds)
        condition.lock()
        while count >= capacity && !finished {
            if !condition.wait(until: deadline) {
                condition.unlock()
                return false
            }
        }
        if finished {
            condition.unlock()
            return true  // the consumer is gone; dropping is safe because nothing was acknowledged
        }
        if let waiter {
            self.waiter = nil
            condition.unlock()
            waiter.resume(returning: batch)
            return true
        }
        items.append(batch)
        condition.unlock()
        return true
    }

    /// Producer: waits until there is room or `timeout` passes.
    public func waitForRoom(timeout: Duration) {
        let deadline = Date().addingTimeInterval(timeout.seconds)
        condition.lock()
        while count >= capacity && !finished {
            if !condition.wait(until: deadline) { break }
        }
        condition.unlock()
    }

    /// Producer: no more batches; `next()` returns what is queued, then nil (or throws `error`).
    public func finish(error: (any Error)? = nil) {
        condition.lock()
        finished = true
        if failure == nil { failure = error }
        let waiter = count == 0 ? self.waiter : nil
        if waiter != nil { self.waiter = nil }
        let failure = self.failure
        condition.broadcast()
        condition.unlock()
        if let waiter {
            if let failure { waiter.resume(throwing: failure) } else { waiter.resume(returning: nil) }
        }
    }

    /// Consumer: the next batch, suspending until one arrives; nil once finished and empty.
    public func next() async throws -> EventBatch? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<EventBatch?, any Error>) in
            condition.lock()
            if let batch = popLocked() {
                condition.unlock()
                continuation.resume(returning: batch)
            } else if finished {
                let failure = self.failure
                condition.unlock()
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume(returning: nil) }
            } else {
                precondition(waiter == nil, "BatchQueue supports one consumer")
                waiter = continuation
                condition.unlock()
            }
        }
    }

    /// Consumer: a queued batch without suspending, if any.
    public func poll() -> EventBatch? {
        condition.lock()
        defer { condition.unlock() }
        return popLocked()
    }

    private func popLocked() -> EventBatch? {
        guard head < items.count else { return nil }
        let batch = items[head]
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        } else if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        condition.broadcast()
        return batch
    }
}

extension Duration {
    /// This duration in seconds as a Double.
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
