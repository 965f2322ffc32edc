import BridgeCore
import Foundation
import KafkaClient
import KafkaSink
import Pipeline
import Processing
import Testing

/// Tests that inject broker errors or take every broker down. They use a mock cluster of their
/// own (started by scripts/test), so that their faults cannot hit the tests on the shared cluster
/// (`KafkaClusterSuites`), and run one at a time.
@Suite(
    "Kafka mock cluster with injected faults", .serialized,
    .enabled(if: TestEnvironment.hasPostgres && KafkaCLI.faultBrokers != nil && KafkaCLI.faultControlPath != nil))
struct KafkaFaultTests {
    static var brokers: String? { KafkaCLI.faultBrokers }

    static func control(_ command: String) throws {
        try KafkaCLI.control(command, path: KafkaCLI.faultControlPath)
    }

    static func kafkaSink(_ yaml: String) throws -> PipeSink {
        try KafkaClusterSuites.KafkaSinkTests.kafkaSink(yaml, brokers: brokers)
    }

    /// 100,000 events (1,000 keys × 100 versions) through three brokers while produce requests
    /// fail: every event arrives, each key on one partition, in order.
    @Test func hundredThousandEventsWithInjectedBrokerErrors() async throws {
        let db = try TestDatabase(prefix: "kafka_bulk")
        defer { db.drop() }
        try db.sql("CREATE TABLE sensors (id int PRIMARY KEY, version int, device text)")
        let topic = "pg.\(db.name).sensors"
        // The mock keeps at most 5 MiB per partition: 16 partitions hold the ~40 MB of events.
        try Self.control("topic \(topic) 16")
        let pipe = try InProcessPipe(
            database: db, name: "kafka_bulk", tables: ["public.sensors"],
            sinks: [try Self.kafkaSink("topic: \"pg.\(db.name).{table}\", linger: 5ms")], withFileSink: false)
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO sensors SELECT g, 0, 'd-' || g FROM generate_series(1, 1000) g")
        for version in 1...99 {
            if version == 20 {
                // Retriable inside librdkafka (it retries the request itself).
                try Self.control("errors 0 19 5")  // NOT_ENOUGH_REPLICAS
            }
            if version == 60 {
                // Not retriable for librdkafka: the messages fail and pgbridge sends them again.
                try Self.control("errors 0 29 2")  // TOPIC_AUTHORIZATION_FAILED
            }
            try db.sql("UPDATE sensors SET version = \(version)")
        }
        // Every event delivered (acks=all: in Kafka) before reading: resent messages count
        // twice in the topic, so its size alone does not say that the last events are there.
        try await waitFor("the pipe to deliver 100,000 events", timeout: .seconds(180)) {
            pipe.runner.stats.events >= 100_000
        }
        let messages = try await KafkaCLI.waitForMessages(
            topic, count: 100_000, timeout: .seconds(120), brokers: Self.brokers)
        let stats = pipe.runner.stats
        try await pipe.stop()

        var firstDelivery: [String: (partition: Int, version: Int)] = [:]
        var seen: Set<String> = []
        var violations = 0
        var partitionsOfKey: [String: Set<Int>] = [:]
        for message in messages {
            guard let event = try JSONSerialization.jsonObject(with: Data(message.value.utf8)) as? [String: Any],
                let id = event.eventID, let version = event.after?["version"] as? Int
            else { continue }
            partitionsOfKey[message.key, default: []].insert(message.partition)
            guard seen.insert(id).inserted else { continue }
            if let previous = firstDelivery[message.key], previous.version >= version { violations += 1 }
            firstDelivery[message.key] = (message.partition, version)
        }
        #expect(seen.count == 100_000, "distinct events: \(seen.count) of 100000")
        #expect(firstDelivery.count == 1000 && firstDelivery.values.allSatisfy { $0.version == 99 })
        #expect(violations == 0)
        #expect(partitionsOfKey.values.allSatisfy { $0.count == 1 })
        #expect(Set(messages.map(\.partition)).count == 16)
        #expect(messages.first?.key == "{\"id\":1}" || messages.contains { $0.key == "{\"id\":1}" })
        #expect(messages.first?.headers.contains("pgbridge-op=") == true)
        #expect(messages.first?.headers.contains("pgbridge-table=public.sensors") == true)
        #expect(stats.retries > 0, "the injected errors should have caused retries")
        #expect(pipe.deadLetters().isEmpty)
    }

    /// Every broker down for a few seconds: the outage is in the log (librdkafka's own
    /// errors, through the logger, its identical repeats suppressed: a bounded number of
    /// lines, not one per poll), and the reading goes on afterwards by itself.
    @Test func brokersThatAreDownAreLoggedAndTheReadingGoesOn() async throws {
        let topic = "brokersdown_\(UUID().uuidString.prefix(8).lowercased())"
        try Self.control("topic \(topic) 1")
        let directory = try TestEnvironment.scratchDirectory("kafkadown")
        let config = try ConfigFile.write(
            """
            postgres: {url: "\(TestEnvironment.postgresURL ?? "")"}
            state_dir: \(directory)/state
            pipes:
              - name: down
                source: {kind: kafka, brokers: "\(Self.brokers ?? "")", topics: [\(topic)]}
                sinks: [{kind: file, path: \(directory)/events.jsonl}]
            """, in: directory)
        let producer = try await KafkaClusterSuites.KafkaSourceTests.producer(brokers: Self.brokers)
        _ = try await producer.produce([KafkaRecord(topic: topic, partition: 0, value: Array(#"{"n":0}"#.utf8))])
        let bridge = try BridgeProcess.run(config: config, directory: directory)
        defer { bridge.kill(SIGKILL) }
        _ = try await EventFile.waitFor("\(directory)/events.jsonl", timeout: .seconds(60)) { $0.count >= 1 }
        // Whatever happens, the brokers come back for the next test on this cluster.
        defer { for broker in 1...3 { try? Self.control("up \(broker)") } }
        for broker in 1...3 { try Self.control("down \(broker)") }
        try await Task.sleep(for: .seconds(6))
        for broker in 1...3 { try Self.control("up \(broker)") }
        _ = try await producer.produce([KafkaRecord(topic: topic, partition: 0, value: Array(#"{"n":1}"#.utf8))])
        await producer.close()
        // At least once: n=0 may come twice when its offset was not committed before the outage.
        let events = try await EventFile.waitFor("\(directory)/events.jsonl", timeout: .seconds(60)) {
            $0.contains { $0.after?["n"] as? Int == 1 }
        }
        #expect(Set(events.compactMap { $0.after?["n"] as? Int }) == [0, 1], "the reading went on")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        let lines = bridge.stderr.split(separator: "\n").filter { $0.contains("[KafkaClient] kafka source") }
        #expect(
            lines.contains { $0.contains(" error ") && $0.contains("brokers are down") },
            "the outage is logged as an error: \(bridge.stderr.suffix(3000))")
        #expect(lines.count < 60, "a bounded number of lines for a 6 s outage: \(lines.count)")
    }
}
