import ArgumentParser
import BridgeCore
import BridgeRuntime
import Foundation
import Logging
import Pipeline

/// `pgbridge bench-sink`: how fast each sink of a pipe takes events from memory
/// (docs/benchmarks.md). The events are synthetic native events shaped like a small table row.
struct BenchSink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sink",
        abstract: "Measure each sink's throughput with synthetic events from memory (no database needed).",
        shouldDisplay: false)

    @OptionGroup var options: GlobalOptions
    @Option(help: "Pipe whose sinks are measured (default: the first).") var pipe: String?
    @Option(help: "Events per run.") var events = 200_000
    @Option(help: "Events per batch.") var batchEvents = 1000
    @Option(help: "Batches per delivery (the pipe groups up to 32).") var group = 16
    @Option(help: "Runs (the median is reported).") var runs = 3

    func run() async throws {
        let config = try options.loadConfig()
        let logger = LoggingSetup.bootstrap(level: options.logLevel)
        guard let pipeConfig = pipe.map({ name in config.pipes.first { $0.name == name } }) ?? config.pipes.first else {
            throw ValidationError("no pipe named \(pipe ?? "")")
        }
        let factory = PipeFactory(config: config, version: PGBridge.version, logger: logger)
        let batches = Self.makeBatches(events: events, perBatch: batchEvents)
        let bytes = batches.reduce(0) { $0 + $1.bytes.count }
        print(
            "pipe \(pipeConfig.name): \(events) events of \(bytes / events) bytes in batches of \(batchEvents), \(group) batches per delivery"
        )
        for sinkConfig in pipeConfig.sinks {
            let sink = try factory.makeSink(sinkConfig, pipe: pipeConfig.name, format: pipeConfig.format)
            try await sink.open()
            _ = try await deliverAll(sink, Array(batches.prefix(max(1, batches.count / 10))))  // warm-up
            var rates: [Double] = []
            for run in 1...runs {
                let started = ContinuousClock.now
                let rejected = try await deliverAll(sink, batches)
                let elapsed = ContinuousClock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                rates.append(Double(events) / seconds)
                print(
                    "  \(sinkConfig.name) run \(run): \(Int(Double(events) / seconds)) events/s, "
                        + "\(Int(Double(bytes) / seconds / 1_048_576)) MiB/s\(rejected > 0 ? ", \(rejected) rejected" : "")"
                )
            }
            await sink.close()
            print(
                "\(sinkConfig.name) (\(sinkConfig.kind)): median \(Int(rates.sorted()[rates.count / 2])) events/s")
        }
    }

    private func deliverAll(_ sink: any EventSink, _ batches: [EventBatch]) async throws -> Int {
        var rejected = 0
        var index = 0
        while index < batches.count {
            let slice = Array(batches[index..<min(index + group, batches.count)])
            rejected += try await sink.deliver(slice).rejected.count
            index += group
        }
        return rejected
    }

    /// Native events like `{"id":…,"op":"insert","source":{…,"table":"bench"},"key":{"id":N},
    /// "before":null,"after":{"id":N,"device":"d-17","temp":21.5,"recorded_at":"…"}}`.
    static func makeBatches(events: Int, perBatch: Int) -> [EventBatch] {
        var batches: [EventBatch] = []
        var batch = EventBatch()
        for n in 0..<events {
            let key = n % 10_000
            let event =
                #"{"id":"0/\#(String(0x1000_0000 + n / 100, radix: 16, uppercase: true)):\#(n % 100)","op":"insert","source":{"db":"bench","schema":"public","table":"bench","lsn":"0/1000","commit_lsn":"0/1000","xid":\#(1000 + n / 100),"commit_time":"2026-11-21T10:00:00.123456Z","capture":"replication"},"key":{"id":\#(key)},"before":null,"after":{"id":\#(key),"device":"d-\#(key % 97)","temp":\#(Double(n % 400) / 10),"recorded_at":"2026-11-21T10:00:00.123456Z"}}"#
            batch.bytes.append(contentsOf: event.utf8)
            batch.endEvent()
            if batch.eventCount == perBatch {
                batch.sequence = UInt64(batches.count)
                batches.append(batch)
                batch = EventBatch()
            }
        }
        if batch.eventCount > 0 { batches.append(batch) }
        return batches
    }
}
