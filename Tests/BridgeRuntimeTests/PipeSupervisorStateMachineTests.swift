import Testing

@testable import BridgeRuntime

/// `PipeSupervisor.StateMachine`, transition by transition.
@Suite struct PipeSupervisorStateMachineTests {
    typealias Machine = PipeSupervisor.StateMachine
    struct Boom: Error, CustomStringConvertible {
        var description: String { "boom" }
    }
    let boom = PipeFailure(Boom())

    func machine(keepsRunning: Bool, pipes: [String] = ["a", "b"]) -> Machine {
        var machine = Machine(keepsRunning: keepsRunning)
        for pipe in pipes { machine.add(pipe, desired: .running) }
        return machine
    }

    @Test func launchingGivesANewGenerationAndNeverRunsAPipeTwice() {
        var machine = machine(keepsRunning: true)
        let first = machine.launch("a")
        #expect(first == 1)
        #expect(machine.launch("a") == nil, "already running")
        #expect(machine.launch("b") == 2)
        #expect(machine.launch("missing") == nil)
        #expect(machine.pipes["a"]?.running == 1)
        #expect(machine.isRunningAny)
    }

    @Test func aLaunchClearsTheLastFailure() {
        var machine = machine(keepsRunning: true)
        machine.launchFailed("a", boom)
        #expect(machine.pipes["a"]?.failure == boom)
        _ = machine.launch("a")
        #expect(machine.pipes["a"]?.failure == nil)
    }

    @Test func aPipeWhoseSourceEndedStaysStopped() {
        var machine = machine(keepsRunning: true)
        let generation = machine.launch("a")!
        #expect(machine.ended("a", generation: generation, .finished) == [])
        #expect(machine.pipes["a"] == Machine.Pipe(desired: .stopped, running: nil, failure: nil))
        #expect(!machine.finished, "the API keeps the process running")
    }

    @Test func withTheAPIAFailureIsReportedAndTheOthersGoOn() {
        var machine = machine(keepsRunning: true)
        let a = machine.launch("a")!
        _ = machine.launch("b")
        #expect(machine.ended("a", generation: a, .failed(boom)) == [.reportFailure("a", boom)])
        #expect(machine.pipes["a"]?.failure == boom)
        #expect(machine.pipes["a"]?.desired == .running, "still wanted: the status shows it as a problem")
        #expect(machine.pipes["b"]?.running != nil)
        #expect(!machine.shuttingDown)
    }

    @Test func withoutTheAPIAFailureStopsEveryPipeAndEndsTheRunWithIt() {
        var machine = machine(keepsRunning: false)
        let a = machine.launch("a")!
        let b = machine.launch("b")!
        #expect(machine.ended("a", generation: a, .failed(boom)) == [.stopAll(["b"])])
        #expect(machine.shuttingDown)
        #expect(machine.launch("a") == nil, "nothing starts while shutting down")
        let other = PipeFailure(Boom2())
        #expect(machine.ended("b", generation: b, .failed(other)) == [.finish(boom)], "the first failure wins")
        #expect(machine.finished)
    }

    struct Boom2: Error {}

    @Test func withoutTheAPITheRunEndsWhenTheLastPipeEnds() {
        var machine = machine(keepsRunning: false)
        let a = machine.launch("a")!
        let b = machine.launch("b")!
        #expect(machine.ended("a", generation: a, .finished) == [])
        #expect(machine.ended("b", generation: b, .finished) == [.finish(nil)])
    }

    @Test func nothingToRunEndsARunWithoutTheAPIAtOnce() {
        var without = machine(keepsRunning: false, pipes: [])
        #expect(without.launchedInitialPipes() == [.finish(nil)])
        var with = machine(keepsRunning: true, pipes: [])
        #expect(with.launchedInitialPipes() == [])
    }

    @Test func theEndOfAnOlderRunIsIgnored() {
        var machine = machine(keepsRunning: true)
        let old = machine.launch("a")!
        #expect(machine.ended("a", generation: old, .cancelled) == [])
        let new = machine.launch("a")!
        #expect(machine.ended("a", generation: old, .failed(boom)) == [])
        #expect(machine.pipes["a"]?.running == new)
        #expect(machine.pipes["a"]?.failure == nil)
    }

    /// A stop request processes the end of the run it waited for; the run's own end event comes
    /// later and changes nothing.
    @Test func anEndProcessedTwiceCountsOnce() {
        var machine = machine(keepsRunning: true)
        let generation = machine.launch("a")!
        machine.setDesired("a", .stopped)
        #expect(machine.ended("a", generation: generation, .finished) == [])
        #expect(machine.ended("a", generation: generation, .failed(boom)) == [])
        #expect(machine.pipes["a"] == Machine.Pipe(desired: .stopped, running: nil, failure: nil))
    }

    /// Without the API, stopping the last running pipe ends the run (nothing else would).
    @Test func stoppingTheLastPipeWithoutTheAPIFinishes() {
        var machine = machine(keepsRunning: false, pipes: ["a"])
        let generation = machine.launch("a")!
        machine.setDesired("a", .stopped)
        #expect(machine.ended("a", generation: generation, .cancelled) == [.finish(nil)])
        #expect(machine.finished)
    }

    /// Once `run()` is cancelled nothing starts any more.
    @Test func nothingStartsAfterRunWasCancelled() {
        var machine = machine(keepsRunning: true)
        machine.cancelled()
        #expect(machine.launch("a") == nil)
        #expect(machine.finished && machine.shuttingDown)
    }

    @Test func aCancelledRunIsNotAFailure() {
        var machine = machine(keepsRunning: true)
        let generation = machine.launch("a")!
        #expect(machine.ended("a", generation: generation, .cancelled) == [])
        #expect(machine.pipes["a"] == Machine.Pipe(desired: .running, running: nil, failure: nil))
    }

    @Test func aLostLeaseRelaunchesThePipe() {
        var machine = machine(keepsRunning: true)
        let generation = machine.launch("a")!
        let lost = PipeFailure(Boom())
        #expect(
            machine.ended("a", generation: generation, .leaseLost(lost)) == [
                .reportLeaseLost("a", lost), .relaunch("a"),
            ])
        #expect(machine.pipes["a"]?.running == nil)
        #expect(machine.launch("a") == generation + 1)
    }

    @Test func aLostLeaseWhileShuttingDownIsAFailureNotARelaunch() {
        var machine = machine(keepsRunning: true)
        let generation = machine.launch("a")!
        #expect(machine.shutdown() == [.stopAll(["a"])])
        #expect(
            machine.ended("a", generation: generation, .leaseLost(boom)) == [.reportFailure("a", boom), .finish(nil)])
    }

    @Test func aLostLeaseOfAStoppedPipeIsNotRelaunched() {
        var machine = machine(keepsRunning: true)
        let generation = machine.launch("a")!
        machine.setDesired("a", .stopped)
        #expect(machine.ended("a", generation: generation, .leaseLost(boom)) == [.reportFailure("a", boom)])
    }

    @Test func shuttingDownStopsTheRunningPipesThenFinishesOnce() {
        var machine = machine(keepsRunning: true, pipes: ["a", "b", "c"])
        let a = machine.launch("a")!
        let c = machine.launch("c")!
        #expect(machine.shutdown() == [.stopAll(["a", "c"])])
        #expect(machine.shutdown() == [], "a second request changes nothing")
        #expect(machine.ended("c", generation: c, .finished) == [])
        #expect(machine.pipes["c"]?.desired == .running, "a shutdown is not a stop: the pipe starts again next time")
        #expect(machine.ended("a", generation: a, .cancelled) == [.finish(nil)])
        #expect(machine.finished)
        #expect(machine.shutdown() == [])
    }

    @Test func shuttingDownWithNothingRunningFinishesAtOnce() {
        var machine = machine(keepsRunning: true)
        #expect(machine.shutdown() == [.finish(nil)])
    }

    @Test func removingAPipeForgetsIt() {
        var machine = machine(keepsRunning: true)
        machine.remove("a")
        #expect(machine.pipes["a"] == nil)
        #expect(machine.launch("a") == nil)
    }

    @Test func aFailureKeepsTheOriginalErrorForTheExitCode() {
        let failure = PipeFailure(PipeFailure(Boom2()))
        #expect(failure.error is Boom2)
    }
}
