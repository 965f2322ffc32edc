import ArgumentParser
import PostgresSource

/// `pgbridge bench-decode`: in-process pgoutput decode + JSON encode throughput (docs/benchmarks.md).
struct BenchDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-decode",
        abstract: "Measure pgoutput decode + JSON encode throughput on one core (no database needed).",
        shouldDisplay: false)

    @Option(help: "Events per run.") var events = 2_000_000
    @Option(help: "Runs (the median is reported).") var runs = 5

    func run() throws {
        _ = try DecodeBenchmark.run(events: events / 10)  // warm-up
        var results: [DecodeBenchmark.Result] = []
        for run in 1...runs {
            let result = try DecodeBenchmark.run(events: events)
            results.append(result)
            print(
                "run \(run): \(result.events) events in \(format(result.seconds)) s = \(Int(result.eventsPerSecond)) events/s, \(result.outputBytes / result.events) bytes/event"
            )
        }
        let median = results.map(\.eventsPerSecond).sorted()[results.count / 2]
        print("median: \(Int(median)) events/s (\(format(1e9 / median)) ns/event)")
    }

    private func format(_ value: Double) -> String {
        String(Double(Int(value * 1000)) / 1000)
    }
}
