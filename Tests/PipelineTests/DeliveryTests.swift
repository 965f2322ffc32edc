import BridgeCore
import Logging
import MetricsTestKit
import Synchronization
import TestSupport
import Testing

@testable import Pipeline

/// The delivery state machine with in-memory test doubles: a source that hands out prepared
/// batches and records acknowledgements, and sinks whose answers are scripted per call.
@Suite("Pipe delivery: retries, dead letters, routes, metrics")
struct DeliveryTests {
    final class ScriptedSource: ChangeSource, Sendable {
        private let state: Mutex<(batches: [EventBatch], acknowledged: [(UInt64, LSN?)])>

        init(_ batches: [EventBatch]) { state = Mutex((batches, [])) }

        var acknowledged: [(UInt64, LSN?)] { state.withLock { $0.acknowledged } }
        func start() async throws {}
        func next() async throws -> EventBatch? {
            state.withLock { $0.batches.isEmpty ? nil : $0.batches.removeFirst() }
        }
        func nextIfReady() -> EventBatch? { nil }
        func acknowledge(through sequence: UInt64, checkpoint: LSN?) {
            state.withLock { $0.acknowledged.append((sequence, checkpoint)) }
        }
        func requestStop() {}
        func finish() async {}
    }

    /// Answers each delivery with the next scripted reply; records what it received.
    final class ScriptedSink: EventSink, Sendable {
        enum Reply: Sendable {
            case ok
            case unavailable
            /// Rejects the events whose JSON contains the marker.
            case reject(marker: String, permanent: Bool)
        }

        private let state: Mutex<(replies: [Reply], received: [[String]])>
        let description: String

        init(_ name: String, _ replies: [Reply]) {
            description = name
            state = Mutex((replies, []))
        }

        var received: [[String]] { state.withLock { $0.received } }
        func open() async throws {}
        func close() async {}

        func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
            var events: [(Int, Int, String)] = []
            for (b, batch) in batches.enumerated() {
                for e in batch.eventEnds.indices {
                    events.append((b, e, String(decoding: batch.event(at: e), as: UTF8.self)))
                }
            }
            let reply = state.withLock { state -> Reply in
                state.received.append(events.map(\.2))
                return state.replies.isEmpty ? .ok : state.replies.removeFirst()
            }
            switch reply {
            case .ok:
                return .delivered
            case .unavailable:
                throw SinkError(sink: description, message: "down")
            case .reject(let marker, let permanent):
                return DeliveryResult(
                    rejected: events.filter { $0.2.contains(marker) }.map {
                        Rejection(batch: $0.0, event: $0.1, reason: "refused \(marker)", isPermanent: permanent)
                    })
            }
        }
    }

    final class MemorySink: EventSink, Sendable {
        private let lines = Mutex<[String]>([])
        var received: [String] { lines.withLock { $0 } }
        var description: String { "memory" }
        func open() async throws {}
        func close() async {}
        func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
            for batch in batches {
                for e in batch.eventEnds.indices {
                    let line = String(decoding: batch.event(at: e), as: UTF8.self)
                    lines.withLock { $0.append(line) }
                }
            }
            return .delivered
        }
    }

    static func batch(_ events: [String], sequence: UInt64, checkpoint: UInt64, routes: [UInt8]? = nil) -> EventBatch {
        var batch = EventBatch.fixture(events, checkpoint: LSN(checkpoint), sequence: sequence)
        batch.routes = routes
        return batch
    }

    func runner(
        _ source: ScriptedSource, _ sinks: [PipeSink], deadLetters: MemorySink?, metrics: TestMetrics,
        routeSinks: [[String]?] = []
    ) -> PipeRunner {
        var options = PipeRunner.Options()
        options.initialRetryDelay = .milliseconds(1)
        options.metricsFactory = metrics
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return PipeRunner(
            name: "p", source: source, sinks: sinks,
            deadLetters: deadLetters.map {
                DeadLetterQueue(pipe: "p", target: $0, logger: logger, retryInterval: .milliseconds(1))
            }, routeSinks: routeSinks, options: options, logger: logger)
    }

    func delivery(retries: Int) -> DeliveryOptions {
        DeliveryOptions(retries: retries, retryInterval: .milliseconds(1), maxRetryInterval: .milliseconds(5))
    }

    @Test func unavailableSinkIsRetriedThenEverythingIsAcknowledged() async throws {
        let source = ScriptedSource([Self.batch([#"{"id":"a"}"#, #"{"id":"b"}"#], sequence: 1, checkpoint: 100)])
        let sink = ScriptedSink("s", [.unavailable, .unavailable, .ok])
        let metrics = TestMetrics()
        let runner = runner(
            source, [PipeSink(name: "s", sink: sink, delivery: delivery(retries: 0))], deadLetters: nil,
            metrics: metrics)
        try await runner.run()
        #expect(sink.received.count == 3 && sink.received.allSatisfy { $0.count == 2 })
        #expect(source.acknowledged.map(\.0) == [1] && source.acknowledged.first?.1 == LSN(100))
        #expect(
            try metrics.expectCounter("pgbridge_sink_errors_total", [("pipe", "p"), ("sink", "s")]).totalValue == 2)
        #expect(
            try metrics.expectCounter("pgbridge_sink_events_total", [("pipe", "p"), ("sink", "s")]).totalValue == 2)
        #expect(
            try metrics.expectGauge("pgbridge_sink_in_flight_events", [("pipe", "p"), ("sink", "s")]).lastValue == 0)
        #expect(
            try metrics.expectTimer("pgbridge_sink_delivery_seconds", [("pipe", "p"), ("sink", "s")]).values.count == 1)
    }

    @Test func transientRejectionsAreRetriedThenDeadLettered() async throws {
        let source = ScriptedSource([
            Self.batch([#"{"id":"a"}"#, #"{"id":"bad"}"#, #"{"id":"c"}"#], sequence: 1, checkpoint: 100),
            Self.batch([#"{"id":"d"}"#], sequence: 2, checkpoint: 200),
        ])
        let sink = ScriptedSink(
            "s",
            [
                .reject(marker: "bad", permanent: false), .reject(marker: "bad", permanent: false),
                .reject(marker: "bad", permanent: false),
            ])
        let dead = MemorySink()
        let metrics = TestMetrics()
        let runner = runner(
            source, [PipeSink(name: "s", sink: sink, delivery: delivery(retries: 2))], deadLetters: dead,
            metrics: metrics)
        try await runner.run()
        // first delivery: all three; then only the rejected one, twice (retries: 2); then batch 2
        #expect(sink.received.map(\.count) == [3, 1, 1, 1])
        #expect(sink.received[1] == [#"{"id":"bad"}"#] && sink.received[3] == [#"{"id":"d"}"#])
        #expect(dead.received.count == 1)
        #expect(dead.received.first?.contains(#""reason":"refused bad","attempts":3"#) == true)
        #expect(dead.received.first?.contains(#""event":{"id":"bad"}"#) == true)
        #expect(dead.received.first?.hasPrefix(#"{"pipe":"p","sink":"s""#) == true)
        #expect(source.acknowledged.map(\.0) == [1, 2])
        let dims = [("pipe", "p"), ("sink", "s")]
        #expect(try metrics.expectCounter("pgbridge_sink_dead_letters_total", dims).totalValue == 1)
        #expect(try metrics.expectCounter("pgbridge_sink_retries_total", dims).totalValue == 2)
        #expect(try metrics.expectCounter("pgbridge_sink_events_total", dims).totalValue == 3)
        #expect(runner.stats.deadLetters == 1)
    }

    @Test func permanentRejectionsSkipRetries() async throws {
        let source = ScriptedSource([Self.batch([#"{"id":"poison"}"#, #"{"id":"ok"}"#], sequence: 1, checkpoint: 1)])
        let sink = ScriptedSink("s", [.reject(marker: "poison", permanent: true)])
        let dead = MemorySink()
        try await runner(
            source, [PipeSink(name: "s", sink: sink, delivery: delivery(retries: 5))], deadLetters: dead,
            metrics: TestMetrics()
        ).run()
        #expect(sink.received.count == 1)
        #expect(dead.received.count == 1 && dead.received[0].contains(#""attempts":1"#))
    }

    @Test func withoutADeadLetterTargetRejectedEventsAreNeverDropped() async throws {
        let source = ScriptedSource([Self.batch([#"{"id":"x"}"#], sequence: 1, checkpoint: 1)])
        let sink = ScriptedSink(
            "s", [.reject(marker: "x", permanent: true), .reject(marker: "x", permanent: true), .ok])
        try await runner(
            source, [PipeSink(name: "s", sink: sink, delivery: delivery(retries: 0))], deadLetters: nil,
            metrics: TestMetrics()
        ).run()
        #expect(sink.received.count == 3)  // kept retrying until the sink took it
        #expect(source.acknowledged.map(\.0) == [1])
    }

    @Test func routesSendEventsOnlyToTheirSinks() async throws {
        let source = ScriptedSource([
            Self.batch(
                [#"{"id":"1"}"#, #"{"id":"2"}"#, #"{"id":"3"}"#], sequence: 1, checkpoint: 1, routes: [0, 1, 2])
        ])
        let a = MemorySink()
        let b = MemorySink()
        try await runner(
            source, [PipeSink(name: "a", sink: a), PipeSink(name: "b", sink: b)], deadLetters: nil,
            metrics: TestMetrics(), routeSinks: [["a"], nil]
        ).run()
        #expect(a.received == [#"{"id":"1"}"#, #"{"id":"2"}"#, #"{"id":"3"}"#])
        #expect(b.received == [#"{"id":"1"}"#, #"{"id":"3"}"#])
    }

    @Test func deadLetterRecordFormat() {
        var out: [UInt8] = []
        DeadLetterQueue.encode(
            DeadLetter(sink: "k\"s", reason: "line\nbreak", attempts: 4, event: Array(#"{"id":"e"}"#.utf8)[...]),
            pipe: "p", failedAt: 1_795_168_800.5, into: &out)
        #expect(
            String(decoding: out, as: UTF8.self)
                == #"{"pipe":"p","sink":"k\"s","reason":"line\nbreak","attempts":4,"failed_at":"2026-11-20T10:00:00.500000Z","event":{"id":"e"}}"#
        )
    }

    @Test func retriesCarryLaterEventsOfTheSameKey() {
        let first = Self.batch(
            [#"{"id":"1","key":{"id":1}}"#, #"{"id":"2","key":{"id":2}}"#, #"{"id":"3","key":{"id":1}}"#],
            sequence: 1, checkpoint: 1)
        let second = Self.batch([#"{"id":"4","key":{"id":1}}"#, #"{"id":"5","key":null}"#], sequence: 2, checkpoint: 2)
        let retry = PipeRunner.retryBatch([first, second], rejected: [(0, 0)])
        let ids = retry.eventEnds.indices.map { String(decoding: retry.event(at: $0), as: UTF8.self) }
        #expect(ids == [#"{"id":"1","key":{"id":1}}"#, #"{"id":"3","key":{"id":1}}"#, #"{"id":"4","key":{"id":1}}"#])
    }

    @Test func subsetsKeepBodiesAndRoutes() {
        var batch = Self.batch([#"{"id":"a"}"#, #"{"id":"b"}"#], sequence: 1, checkpoint: 1, routes: [1, 2])
        var bodies = EventBatch.Bodies()
        for text in ["A", "B"] {
            bodies.bytes.append(contentsOf: text.utf8)
            bodies.bytes.append(10)
            bodies.ends.append(bodies.bytes.count)
        }
        batch.bodies = bodies
        var copy = EventBatch()
        copy.appendEvent(from: batch, at: 1)
        #expect(String(decoding: copy.body(at: 0), as: UTF8.self) == "B")
        #expect(String(decoding: copy.event(at: 0), as: UTF8.self) == #"{"id":"b"}"#)
        #expect(copy.routes == [2])
    }
}
