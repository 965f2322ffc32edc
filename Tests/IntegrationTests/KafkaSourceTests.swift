import BridgeCore
import Crypto
import Foundation
import KafkaClient
import Testing

extension KafkaClusterSuites {
    /// `kind: kafka` sources on the mock cluster, with the real pgbridge binary.
    @Suite("Kafka source", .enabled(if: TestEnvironment.hasPostgres && KafkaCLI.brokers != nil))
    struct KafkaSourceTests {
        static func producer(brokers: String? = KafkaCLI.brokers) async throws -> KafkaProducer {
            let producer = KafkaProducer(
                config: try KafkaConsumerGroupTests.connection(brokers: brokers), logger: InProcessPipe.testLogger)
            try await producer.open()
            return producer
        }

        /// The reading of message `n`: device `d<n % 50>`, its own sequence number.
        static func reading(_ n: Int) -> KafkaRecord {
            KafkaRecord(
                topic: "", partition: Int32(n % 3), key: Array("d\(n % 50)".utf8),
                value: Array(
                    #"{"device":"d\#(n % 50)","seq":\#(n),"value":\#(Double(n) / 4),"at":"2026-12-06T10:00:00Z"}"#.utf8)
            )
        }

        /// 50,000 JSON messages on three partitions into PostgreSQL (a history of every message,
        /// and a table applied by key) while pgbridge is SIGKILLed twice: exactly one history row
        /// per message; the two bad messages are dead-lettered with the reason, the pipe goes on.
        @Test func kafkaIntoPostgresExactlyOnceAcrossKills() async throws {
            let topic = "ingest_\(UUID().uuidString.prefix(8).lowercased())"
            try KafkaCLI.control("topic \(topic) 3")
            let target = try TestDatabase(prefix: "kafkasrc")
            defer { target.drop() }
            try target.sql(
                "CREATE TABLE readings (device text, seq int, value float8, at timestamptz, PRIMARY KEY (device, seq))")
            let directory = try TestEnvironment.scratchDirectory("kafkasrc")
            let config = try ConfigFile.write(
                """
                postgres: {url: "\(target.url)"}
                state_dir: \(directory)/state
                pipes:
                  - name: ingest
                    source: {kind: kafka, brokers: "\(KafkaCLI.brokers ?? "")", topics: [\(topic)], group: g_\(topic), table: public.readings, key: [device, seq], batch_messages: 500}
                    sinks:
                      - {name: replica, kind: postgres, url: "\(target.url)", copy_format: binary}
                      - {name: history, kind: postgres, url: "\(target.url)", mode: append, table: public.readings_history, create_tables: true}
                    dead_letter: {kind: file, path: \(directory)/dead_letters.jsonl}
                """, in: directory)
            func launch() throws -> BridgeProcess {
                try BridgeProcess.run(config: config, directory: directory)
            }
            func history() -> Int {
                (try? target.value("SELECT count(*) FROM readings_history")).flatMap { $0 }.flatMap { Int($0) } ?? 0
            }

            let total = 50_000
            let producer = try await Self.producer()
            let producing = Task {
                for wave in 0..<50 {
                    var records = (wave * 1000..<(wave + 1) * 1000).map { n in
                        var record = Self.reading(n)
                        record.topic = topic
                        return record
                    }
                    if wave == 10 {
                        records.append(KafkaRecord(topic: topic, partition: 1, value: Array("not json".utf8)))
                        records.append(KafkaRecord(topic: topic, partition: 2, value: Array("[1,2,3]".utf8)))
                    }
                    _ = try await producer.produce(records)
                    try await Task.sleep(for: .milliseconds(40))
                }
            }
            var bridge = try launch()
            var logs: [String] = []
            for threshold in [total / 4, total / 2] {
                try await waitFor("\(threshold) history rows", timeout: .seconds(120)) { history() >= threshold }
                bridge.kill(SIGKILL)
                _ = try await bridge.waitForExit()
                logs.append(bridge.stderr)
                bridge = try launch()
            }
            try await producing.value
            await producer.close()
            try await waitFor("a history row per message", timeout: .seconds(120)) { history() >= total }
            try await waitFor("every reading applied", timeout: .seconds(60)) {
                (try? target.value("SELECT count(*) FROM readings")) == "\(total)"
            }
            // Nothing more comes: what was applied stays exactly once.
            try await Task.sleep(for: .seconds(2))
            bridge.kill(SIGTERM)
            #expect(try await bridge.waitForExit() == 0)
            logs.append(bridge.stderr)
            #expect(try target.value("SELECT count(*) FROM readings_history") == "\(total)", "one row per message")
            #expect(try target.value("SELECT count(DISTINCT id) FROM readings_history") == "\(total)")
            #expect(
                try target.value(
                    "SELECT count(*) FROM readings_history WHERE after->>'seq' IS NULL OR id NOT LIKE 'kafka:\(topic):%'"
                )
                    == "0")
            #expect(
                try target.value("SELECT sum(seq)::text FROM readings") == "\((0..<total).reduce(0, +))",
                "every message applied once by its key")
            #expect(
                try target.value("SELECT value FROM readings WHERE device = 'd7' AND seq = 49957") == "12489.25")
            let resumed = logs.dropFirst().filter { $0.contains("postgres sink history resumes after") }.count
            #expect(resumed == 2, "every restart read the partitions' recorded offsets")
            let positions = try target.sql(
                "SELECT source_id, position FROM pgbridge.sink_positions WHERE sink = 'history' ORDER BY 1")
            #expect(positions.map { $0[0] ?? "" } == (0..<3).map { "kafka:\(topic):\($0)" }, "\(positions)")
            // Dead letters are at least once: a refused message whose offset was not committed
            // before a kill is refused (and dead-lettered) again by the next run.
            let letters = EventFile.read("\(directory)/dead_letters.jsonl")
            let refused = Set(
                letters.compactMap { letter -> String? in
                    guard let event = letter["event"] as? [String: Any] else { return nil }
                    return "\(event["partition"] ?? "?"):\(event["offset"] ?? "?")"
                })
            #expect(letters.count >= 2 && refused.count == 2, "\(letters)")
            let reasons = letters.compactMap { $0["reason"] as? String }
            #expect(reasons.contains { $0.contains("offset") && $0.contains("not valid JSON") }, "\(reasons)")
            #expect(reasons.contains { $0.contains("not an object") }, "\(reasons)")
            #expect(letters.allSatisfy { $0["sink"] as? String == "source" })
            let payloads = letters.compactMap { ($0["event"] as? [String: Any])?["payload"] as? String }
            #expect(Set(payloads) == ["not json", "[1,2,3]"], "\(letters)")
        }

        /// A sink that is down stops the reading: fetching pauses (the queue between source and
        /// sinks stays bounded, the group keeps its partitions), and everything arrives once the
        /// sink is back.
        @Test func aSinkThatIsDownPausesTheSource() async throws {
            let topic = "paused_\(UUID().uuidString.prefix(8).lowercased())"
            try KafkaCLI.control("topic \(topic) 2")
            let server = try await HookServer.start(HookServer.Behaviour(failures: 60))
            defer { Task { await server.stop() } }
            let directory = try TestEnvironment.scratchDirectory("kafkapause")
            let config = try ConfigFile.write(
                """
                postgres: {url: "\(TestEnvironment.postgresURL ?? "")"}
                state_dir: \(directory)/state
                pipes:
                  - name: paused
                    source: {kind: kafka, brokers: "\(KafkaCLI.brokers ?? "")", topics: [\(topic)], group: g_\(topic), batch_messages: 100}
                    sinks:
                      - {kind: http, url: "\(server.url)", batch_count: 500, retries: 1000, retry_interval: 100ms, max_retry_interval: 300ms}
                """, in: directory)
            let producer = try await Self.producer()
            _ = try await producer.produce(
                (0..<6000).map { n in
                    KafkaRecord(topic: topic, partition: Int32(n % 2), value: Array(#"{"n":\#(n)}"#.utf8))
                })
            await producer.close()
            let bridge = try BridgeProcess.run(config: config, directory: directory)
            func delivered() -> [[String: Any]] {
                server.delivered.compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.body.utf8))) as? [[String: Any]]
                }.flatMap { $0 }
            }
            try await waitFor("every message delivered", timeout: .seconds(120)) {
                Set(delivered().compactMap { $0.eventID }).count >= 6000
            }
            bridge.kill(SIGTERM)
            #expect(try await bridge.waitForExit() == 0)
            let events = delivered()
            #expect(Set(events.compactMap { $0.after?["n"] as? Int }) == Set(0..<6000))
            #expect(server.received.count(where: { $0.status == 503 }) == 60, "the sink was down for 60 requests")
            #expect(
                bridge.stderr.contains("fetching is paused, the group keeps its partitions"),
                "\(bridge.stderr.suffix(3000))")
            #expect(bridge.stderr.contains("fetching resumed"))
        }

        /// Kafka → Kafka with `filter` and `mask` (stream ETL): every message that matches
        /// reaches the output topic once, its e-mail replaced by its SHA-256, nothing else does,
        /// and each device's messages keep their order.
        @Test func aTopicFilteredAndMaskedIntoAnotherTopic() async throws {
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let input = "etl_in_\(suffix)"
            let output = "etl_out_\(suffix)"
            try KafkaCLI.control("topic \(input) 3")
            try KafkaCLI.control("topic \(output) 3")
            let directory = try TestEnvironment.scratchDirectory("kafkaetl")
            let config = try ConfigFile.write(
                """
                postgres: {url: "\(TestEnvironment.postgresURL ?? "")"}
                state_dir: \(directory)/state
                pipes:
                  - name: etl
                    source: {kind: kafka, brokers: "\(KafkaCLI.brokers ?? "")", topics: [\(input)], group: g_\(input), table: public.readings, key: [device]}
                    processors:
                      - filter: "temp > 30"
                      - mask: {columns: [email], with: sha256}
                    sinks: [{kind: kafka, brokers: "\(KafkaCLI.brokers ?? "")", topic: \(output)}]
                """, in: directory)
            let total = 6000
            func temperature(_ n: Int) -> Int { (n * 7) % 60 }
            let producer = try await Self.producer()
            _ = try await producer.produce(
                (0..<total).map { n in
                    let device = "d\(n % 40)"
                    return KafkaRecord(
                        topic: input, partition: Int32(n % 40 % 3), key: Array(device.utf8),
                        value: Array(
                            #"{"device":"\#(device)","seq":\#(n),"temp":\#(temperature(n)),"email":"u\#(n)@example.com"}"#
                                .utf8))
                })
            await producer.close()
            let expected = (0..<total).filter { temperature($0) > 30 }
            let bridge = try BridgeProcess.run(config: config, directory: directory)
            let messages = try await KafkaCLI.waitForMessages(output, count: expected.count, timeout: .seconds(120))
            try await Task.sleep(for: .seconds(1))
            bridge.kill(SIGTERM)
            #expect(try await bridge.waitForExit() == 0)
            let events = try await KafkaCLI.consume(output).compactMap {
                try JSONSerialization.jsonObject(with: Data($0.value.utf8)) as? [String: Any]
            }
            let seqs = events.compactMap { $0.after?["seq"] as? Int }
            #expect(seqs.count == expected.count && Set(seqs) == Set(expected), "each matching message once")
            #expect(messages.count == expected.count)
            for event in events.prefix(200) {
                let seq = try #require(event.after?["seq"] as? Int)
                let email = try #require(event.after?["email"] as? String)
                let digest = SHA256.hash(data: Data("u\(seq)@example.com".utf8)).map { String(format: "%02x", $0) }
                #expect(email == digest.joined(), "masked with sha256")
            }
            var last: [String: Int] = [:]
            var outOfOrder = 0
            for message in try await KafkaCLI.consume(output).sorted(by: {
                ($0.partition, $0.offset) < ($1.partition, $1.offset)
            }) {
                guard let event = try JSONSerialization.jsonObject(with: Data(message.value.utf8)) as? [String: Any],
                    let device = event.after?["device"] as? String, let seq = event.after?["seq"] as? Int
                else { continue }
                if let previous = last[device], seq <= previous { outOfOrder += 1 }
                last[device] = seq
                #expect(message.key.contains("\"\(device)\""), "keyed by the event's key: \(message.key)")
            }
            #expect(outOfOrder == 0, "each device's messages keep their order")
        }

        /// PostgreSQL → Kafka (native events, or Debezium's envelope) → PostgreSQL (apply):
        /// after inserts, updates and deletes, the second database equals the first. (A native
        /// key change is one event keyed by the new key: on a topic of several partitions it can
        /// overtake the old key's earlier changes; see docs/sources.md.)
        @Test(arguments: ["native", "debezium"])
        func changesTravelThroughKafkaIntoAnotherDatabase(format: String) async throws {
            let topic = "roundtrip_\(UUID().uuidString.prefix(8).lowercased())"
            try KafkaCLI.control("topic \(topic) 3")
            let source = try TestDatabase(prefix: "kafkart_src")
            let target = try TestDatabase(prefix: "kafkart_dst")
            defer {
                source.drop()
                target.drop()
            }
            let table = "CREATE TABLE items (id int PRIMARY KEY, name text, qty int, data jsonb, at timestamptz)"
            try source.sql(table)
            try target.sql(table)
            let directory = try TestEnvironment.scratchDirectory("kafkart")
            let slot = "pgbridge_\(source.name)"
            let config = try ConfigFile.write(
                """
                postgres: {url: "\(source.url)"}
                state_dir: \(directory)/state
                pipes:
                  - name: out
                    source: {kind: replication, tables: [public.items], slot: \(slot), publication: \(slot)}
                    format: \(format)
                    sinks: [{kind: kafka, brokers: "\(KafkaCLI.brokers ?? "")", topic: \(topic)}]
                  - name: back
                    source: {kind: kafka, brokers: "\(KafkaCLI.brokers ?? "")", topics: [\(topic)], group: g_\(topic), format: \(format)}
                    sinks: [{kind: postgres, url: "\(target.url)"}]
                """, in: directory)
            let bridge = try BridgeProcess.run(config: config, directory: directory)
            try await waitForSlot(source, slot)
            try source.sql(
                """
                INSERT INTO items SELECT g, 'item ' || g, g, jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g)),
                  '2026-12-06 10:00:00+00'::timestamptz + g * interval '1 minute' FROM generate_series(1, 300) g;
                UPDATE items SET qty = qty * 10, name = E'renamed\\t' || id WHERE id % 5 = 0;
                DELETE FROM items WHERE id % 7 = 0;
                UPDATE items SET data = NULL WHERE id BETWEEN 100 AND 110;
                """)
            func rows(_ db: TestDatabase) throws -> [[String?]] {
                try db.sql("SELECT id, name, qty, data::text, at FROM items ORDER BY id")
            }
            try await waitFor("the second database to equal the first", timeout: .seconds(120)) {
                (try? rows(target)) == (try rows(source))
            }
            #expect(try rows(source).count == 258, "300 rows, 42 deleted")
            bridge.kill(SIGTERM)
            #expect(try await bridge.waitForExit() == 0)
            let messages = try await KafkaCLI.consume(topic)
            #expect(messages.count > 300, "inserts, updates and deletes went through the topic")
            if format == "debezium" {
                #expect(messages.allSatisfy { $0.value.contains(#""connector":"postgresql""#) }, "Debezium's envelope")
            }
        }
    }
}
