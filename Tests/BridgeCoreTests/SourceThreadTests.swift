import BridgeCore
import Foundation
import Synchronization
import Testing

/// `SourceThread`: every wait of a source's thread ends on the signal it waits for, not on a
/// poll, and `finish()` returns only after the thread has returned.
@Suite struct SourceThreadTests {
    @Test func anAcknowledgementEndsTheWaitForIt() async throws {
        let thread = SourceThread(name: "test-ack")
        let outcome = Mutex<SourceThread.AcknowledgementWait?>(nil)
        thread.start {
            thread.put(EventBatch(sequence: 1))
            outcome.withLock { $0 = thread.waitForAcknowledgement(through: 1) }
        }
        let batch = try #require(try await thread.queue.next())
        #expect(batch.sequence == 1)
        thread.acknowledge(through: 1)
        await thread.finish()
        #expect(outcome.withLock { $0 } == .acknowledged)
        #expect(thread.acknowledged == 1)
    }

    @Test func anOlderAcknowledgementNeverMovesItBack() {
        let thread = SourceThread(name: "test-order")
        thread.acknowledge(through: 5)
        thread.acknowledge(through: 3)
        #expect(thread.acknowledged == 5)
        #expect(thread.waitForAcknowledgement(through: 4, timeout: .milliseconds(1)) == .acknowledged)
        #expect(thread.waitForAcknowledgement(through: 6, timeout: .milliseconds(1)) == .timedOut)
    }

    @Test func finishingEndsAnAcknowledgementWaitAndIsAwaited() async {
        let thread = SourceThread(name: "test-finish")
        let outcome = Mutex<SourceThread.AcknowledgementWait?>(nil)
        let waiting = Atomic<Bool>(false)
        thread.start {
            waiting.store(true, ordering: .sequentiallyConsistent)
            outcome.withLock { $0 = thread.waitForAcknowledgement(through: 1) }
        }
        while !waiting.load(ordering: .sequentiallyConsistent) { await Task.yield() }
        await thread.finish()
        // `finish()` returned: the thread has returned, so its outcome is recorded.
        #expect(outcome.withLock { $0 } == .finishing)
        #expect(thread.finishRequested && thread.stopRequested)
    }

    @Test func aStopEndsAPauseAtOnce() async {
        let thread = SourceThread(name: "test-pause")
        let paused = Mutex<Bool?>(nil)
        thread.start { paused.withLock { $0 = thread.pause(.seconds(3600)) } }
        thread.requestStop()
        await thread.finish()
        #expect(paused.withLock { $0 } == false)
        #expect(thread.pause(.seconds(3600)) == false)
    }

    /// `wait` is for waits whose outcome matters while the thread drains: a stop does not end
    /// it, finishing does.
    @Test func aWaitIsNotEndedByAStopButByFinishing() async {
        let thread = SourceThread(name: "test-wait")
        thread.requestStop()
        let started = ContinuousClock.now
        thread.wait(.milliseconds(50))
        #expect(ContinuousClock.now - started >= .milliseconds(45), "a stop does not cut it short")
        let waited = Mutex<Duration?>(nil)
        thread.start {
            let begin = ContinuousClock.now
            thread.wait(.seconds(3600))
            waited.withLock { $0 = ContinuousClock.now - begin }
        }
        await thread.finish()
        #expect((waited.withLock { $0 } ?? .seconds(3600)) < .seconds(60))
    }

    @Test func aPauseWithoutAStopRunsItsCourse() {
        let thread = SourceThread(name: "test-pause-course")
        #expect(thread.pause(.milliseconds(1)) == true)
        #expect(!thread.stopRequested)
    }

    @Test func finishingAThreadThatNeverStartedReturns() async throws {
        let thread = SourceThread(name: "test-never")
        await thread.finish()
        #expect(try await thread.queue.next() == nil)
    }

    @Test func aPutWaitingForRoomEndsWhenThePipelineFinishes() async {
        let thread = SourceThread(name: "test-put", queueCapacity: 1)
        let handedOut = Atomic<Int>(0)
        thread.start {
            for sequence in 1...3 {
                thread.put(EventBatch(sequence: UInt64(sequence)))
                handedOut.add(1, ordering: .sequentiallyConsistent)
            }
        }
        while handedOut.load(ordering: .sequentiallyConsistent) < 1 { await Task.yield() }
        await thread.finish()
        #expect(handedOut.load(ordering: .sequentiallyConsistent) == 3)
    }
}
