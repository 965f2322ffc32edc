import Synchronization
import Testing

@testable import BridgeRuntime

/// `PipeRun`: how a run's work ends, and that a cancel ends it even when it would wait forever.
@Suite struct PipeRunTests {
    struct Boom: Error {}

    @Test func workThatReturnsFinishes() async {
        let run = PipeRun(name: "a", generation: 1) {}
        #expect(await run.execute() == .finished)
        await run.waitUntilEnded()  // returns at once once ended
    }

    @Test func workThatThrowsFails() async {
        let run = PipeRun(name: "a", generation: 1) { throw Boom() }
        #expect(await run.execute() == .failed(PipeFailure(Boom())))
    }

    @Test func aLostLeaseIsItsOwnOutcome() async {
        let lost = PipeLease.Lost(pipe: "a", reason: "its lock connection to PostgreSQL broke")
        let run = PipeRun(name: "a", generation: 1) { throw lost }
        #expect(await run.execute() == .leaseLost(PipeFailure(lost)))
    }

    @Test func aCancelEndsWorkThatWouldWaitForever() async {
        let started = Atomic<Bool>(false)
        let run = PipeRun(name: "a", generation: 1) {
            started.store(true, ordering: .sequentiallyConsistent)
            try await Task.sleep(for: .seconds(3600))
        }
        async let outcome = run.execute()
        while !started.load(ordering: .sequentiallyConsistent) { await Task.yield() }
        run.cancel()
        #expect(await outcome == .cancelled)
        #expect(run.isCancelled)
        await run.waitUntilEnded()
    }

    @Test func aCancelBeforeTheRunStartsEndsItAtOnce() async {
        let run = PipeRun(name: "a", generation: 1) { try await Task.sleep(for: .seconds(3600)) }
        run.cancel()
        #expect(await run.execute() == .cancelled)
    }

    @Test func waitersAreResumedWhenTheRunEnds() async {
        let release = AsyncStream<Void>.makeStream()
        let run = PipeRun(name: "a", generation: 1) {
            for await _ in release.stream { return }
        }
        async let outcome = run.execute()
        async let waited: Void = run.waitUntilEnded()
        release.continuation.yield()
        #expect(await outcome == .finished)
        await waited
    }

    @Test func cancellingTheParentTaskCancelsTheWork() async {
        let run = PipeRun(name: "a", generation: 1) { try await Task.sleep(for: .seconds(3600)) }
        let task = Task { await run.execute() }
        task.cancel()
        #expect(await task.value == .cancelled)
    }
}
