import BridgeCore
import ForeignTables
import Foundation
import KafkaClient
import KafkaSink
import Pipeline
import Processing
import Testing
import WireProtocol

extension KafkaClusterSuites {
    @Suite(
        "Kafka sink against librdkafka's mock cluster",
        .enabled(if: TestEnvironment.hasPostgres && KafkaCLI.brokers != nil && KafkaCLI.controlPath != nil))
    struct KafkaSinkTests {
        static func kafkaSink(
            _ yaml: String, retries: Int = 5, format: EventFormat = .native, brokers: String? = KafkaCLI.brokers
        ) throws -> PipeSink {
            let sink = try SinkFixture.parse(
                "kind: kafka, brokers: \"\(brokers ?? "")\", \(yaml)", retries: retries,
                retryInterval: .milliseconds(100))
            guard let kafka = sink.settings as? KafkaSinkConfig else { throw TestFailure("expected a kafka sink") }
            let logger = InProcessPipe.testLogger
            return PipeSink(
                name: "kafka",
                sink: KafkaSink(
                    config: kafka, producer: KafkaProducer(config: kafka, logger: logger), format: format,
                    logger: logger),
                delivery: sink.delivery)
        }

        /// A foreign-table scan that would read more than `wire.max_scan_rows` is refused with the
        /// fix instead of filling memory (600 messages, a limit of 5).
        @Test func aScanPastMaxScanRowsIsRefused() async throws {
            let brokers = try #require(KafkaCLI.brokers)
            let topic = "scan_limit_\(UUID().uuidString.prefix(8).lowercased())"
            try KafkaCLI.control("topic \(topic) 1")
            let produced = try await TestEnvironment.shellAsync(
                "seq 1 600 | sed 's/.*/k|{\"n\": &}/' | kcat -P -b '\(brokers)' -t '\(topic)' -K '|'")
            #expect(produced.status == 0, "\(produced.output)")
            let sink = try SinkFixture.parse("kind: kafka, brokers: \"\(brokers)\"", retries: 0)
            guard let kafka = sink.settings as? KafkaSinkConfig else { throw TestFailure("expected a kafka sink") }
            let table = KafkaTopicTable(
                topic: WireKafkaTopic(name: topic), config: kafka,
                producer: KafkaProducer(config: kafka, logger: InProcessPipe.testLogger), maxScanRows: 5)
            let scan = try await table.scan(ScanRequest())
            var refusal = ""
            do {
                while try await scan.next() != nil {}
            } catch {
                refusal = "\(error)"
            }
            await scan.close()
            #expect(refusal.contains("the scan of Kafka topic \(topic) passed max_scan_rows (5) rows"), "\(refusal)")
        }

        @Test func permanentRejectionGoesToDeadLetter() async throws {
            let db = try TestDatabase(prefix: "kafka_dlq")
            defer { db.drop() }
            try db.sql("CREATE TABLE docs (id int PRIMARY KEY, body text)")
            let topic = "pg.\(db.name).docs"
            try KafkaCLI.control("topic \(topic) 1")
            let pipe = try InProcessPipe(
                database: db, name: "kafka_dlq", tables: ["public.docs"],
                sinks: [
                    try Self.kafkaSink(
                        "topic: \"pg.\(db.name).{table}\", properties: {message.max.bytes: \"2000\"}")
                ])
            try await pipe.startStreaming(db)
            try db.sql("INSERT INTO docs VALUES (1, 'small'), (2, repeat('x', 5000)), (3, 'small too')")
            let messages = try await KafkaCLI.waitForMessages(topic, count: 2, timeout: .seconds(30))
            let letters = try await EventFile.waitFor(pipe.deadLetterPath) { !$0.isEmpty }
            try await pipe.stop()
            #expect(messages.count == 2)
            #expect(letters.count == 1)
            #expect((letters.first?["reason"] as? String)?.contains("too large") == true, "\(letters)")
            #expect((letters.first?["event"] as? [String: Any])?.key?["id"] as? Int == 2)
        }

        @Test func cloudEventsBinaryModeUsesHeaders() async throws {
            let db = try TestDatabase(prefix: "kafka_ce")
            defer { db.drop() }
            try db.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
            let topic = "pg.\(db.name).t"
            try KafkaCLI.control("topic \(topic) 1")
            let pipe = try InProcessPipe(
                database: db, name: "kafka_ce", tables: ["public.t"],
                sinks: [
                    try Self.kafkaSink("topic: \"pg.\(db.name).{table}\", content_mode: binary", format: .cloudevents)
                ],
                transform: EventTransform(pipe: "kafka_ce", processors: [], format: .cloudevents, version: "test"))
            try await pipe.startStreaming(db)
            try db.sql("INSERT INTO t VALUES (1, 'one')")
            let messages = try await KafkaCLI.waitForMessages(topic, count: 1, timeout: .seconds(30))
            try await pipe.stop()
            let message = try #require(messages.first)
            #expect(message.headers.contains("ce_specversion=1.0"), "\(message.headers)")
            #expect(message.headers.contains("ce_type=io.pgbridge.change.insert"))
            #expect(message.headers.contains("content-type=application/json"))
            let data = try #require(try JSONSerialization.jsonObject(with: Data(message.value.utf8)) as? [String: Any])
            #expect(data.after?["v"] as? String == "one" && message.headers.contains("ce_id=\(data.eventID ?? "?")"))
            #expect(message.key == "{\"id\":1}")
        }
    }
}
