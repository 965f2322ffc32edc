import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

extension KafkaClusterSuites {
    /// One pipe fans out to Kafka (mock cluster), RabbitMQ, Redis (AOF, `appendfsync always`) and a
    /// file while rows are written at a steady rate; meanwhile pgbridge is killed with SIGKILL three
    /// times, Redis is killed and restarted, RabbitMQ is stopped for 10 s, PostgreSQL is restarted
    /// and the replication connection is blackholed. Every committed row must reach every sink;
    /// duplicates are counted and reported (at-least-once), not failed on.
    @Suite("Fault injection: one pipe, four sinks", .serialized, .enabled(if: FaultsSetup.servicesAvailable))
    struct FaultsTests {
        @Test func everyRowReachesEverySinkThroughSevenFaults() async throws {
            try await OutageLock.holding([.redis2, .rabbitMQ2]) {
                try await runWithFaults()
            }
        }

        private func runWithFaults() async throws {
            let pair = try PostgresPair(name: "faults")
            defer { pair.destroy() }
            _ = try PGConnection(url: pair.primaryURL, mode: .normal).execute(
                "CREATE TABLE ticks (id int PRIMARY KEY, v int NOT NULL)")
            // pgbridge reaches PostgreSQL through a proxy whose connections can be blackholed.
            let proxy = try TCPProxy(targetPort: pair.primaryPort)
            defer { proxy.stop() }

            let name = "faults_\(UUID().uuidString.prefix(8).lowercased())"
            let directory = try TestEnvironment.scratchDirectory("faults")
            let setup = try FaultsSetup(name: name, directory: directory, postgresPort: proxy.port)
            try KafkaCLI.control("topic \(setup.topic) 4")

            var bridges: [BridgeProcess] = []
            func launch() throws -> BridgeProcess {
                let bridge = try BridgeProcess(
                    arguments: ["run", "--config", setup.config, "--log-level", "info"], directory: directory)
                bridges.append(bridge)
                return bridge
            }
            var bridge = try launch()
            try await waitForStreaming(bridge, times: 1)

            let inserter = Inserter(url: pair.primaryURL)
            inserter.start(
                transactions: 1_000_000, rowsPerTransaction: 5, pause: .milliseconds(40), table: "ticks"
            ) { _, first in
                "INSERT INTO ticks SELECT g, g FROM generate_series(\(first), \(first + 4)) g"
            }
            defer { inserter.stop() }

            var faults: [String] = []
            func killBridge() async throws {
                try await Task.sleep(for: .seconds(3))
                bridge.kill(SIGKILL)
                _ = try await bridge.waitForExit()
                try await Task.sleep(for: .milliseconds(200))
                bridge = try launch()
                try await waitForStreaming(bridge, times: 1)
                faults.append("pgbridge SIGKILL")
            }

            try await killBridge()

            try await Task.sleep(for: .seconds(3))
            try await RedisCLI.control("kill")
            try await Task.sleep(for: .seconds(2))
            try await RedisCLI.control("start")
            faults.append("Redis killed (-9) and restarted after 2 s")

            try await killBridge()

            try await Task.sleep(for: .seconds(3))
            try await AMQPCLI.control("stop")
            try await Task.sleep(for: .seconds(10))
            try await AMQPCLI.control("start")
            faults.append("RabbitMQ stopped for 10 s")

            try await Task.sleep(for: .seconds(3))
            try pair.restartPrimary()
            try await waitForStreaming(bridge, times: 2)
            faults.append("PostgreSQL restarted")

            try await Task.sleep(for: .seconds(3))
            proxy.blackholeExistingConnections()
            try await waitForStreaming(bridge, times: 3)
            #expect(
                bridge.stderr.contains("the replication connection is treated as lost"), "\(bridge.stderr.suffix(3000))"
            )
            faults.append("replication connection blackholed")

            try await killBridge()

            try await Task.sleep(for: .seconds(3))
            inserter.stop()
            try await inserter.waitUntilDone()
            let afterRestart = try PGConnection(url: pair.primaryURL, mode: .normal)
            let committed = try afterRestart.execute("SELECT id FROM ticks ORDER BY id")
            let expected = Set((0..<committed.rowCount).compactMap { committed.string($0, 0).flatMap { Int($0) } })
            #expect(expected.count > 2_000, "only \(expected.count) rows were written")

            // Every sink, read back with its own client.
            var delivered: [(sink: String, ids: [Int])] = []
            let fileEvents = try await EventFile.waitFor(setup.output, timeout: .seconds(180)) { events in
                Set(events.compactMap { $0.after?["id"] as? Int }).isSuperset(of: expected)
            }
            delivered.append(("file", fileEvents.compactMap { $0.after?["id"] as? Int }))
            delivered.append(("kafka", try await kafkaIDs(setup.topic, expected: expected)))
            delivered.append(("rabbitmq", try await rabbitIDs(queue: setup.queue, expected: expected)))
            let redisEvents = try await RedisCLI.waitForStreamRows(
                setup.redisURL, setup.redisKey, ids: expected, timeout: .seconds(180))
            delivered.append(("redis", redisEvents.compactMap { $0.after?["id"] as? Int }))

            bridge.kill(SIGTERM)
            let status = try await bridge.waitForExit()
            #expect(status == 0, "SIGTERM exit status \(status): \(bridge.stderr.suffix(2000))")

            var figures: [String] = []
            for (sink, ids) in delivered {
                let missing = expected.subtracting(ids)
                #expect(missing.isEmpty, "\(sink): \(missing.count) rows missing, e.g. \(missing.sorted().prefix(10))")
                figures.append("\(sink) \(ids.count) events (\(ids.count - Set(ids).count) duplicates)")
            }
            let deadLetters = EventFile.read("\(directory)/state/faults.dead_letters.jsonl")
            #expect(deadLetters.isEmpty, "dead-lettered: \(deadLetters.prefix(3))")
            let logs = bridges.map(\.stderr).joined(separator: "\n")
            // Each fault was felt, and said so in the log.
            // The restart and the blackhole each interrupt the replication connection, unless the
            // restart came while it was closed on purpose: the sinks had taken nothing for 10 s
            // (RabbitMQ's outage and its retries, on a loaded machine).
            let interruptions = logs.components(separatedBy: "replication interrupted").count - 1
            let pauses = logs.components(separatedBy: "closing the replication connection until they take").count - 1
            #expect(interruptions >= 1 && interruptions + pauses >= 2, "reconnects: \(logs)")
            #expect(logs.contains("deliver to redis ("), "the Redis outage was not noticed")
            #expect(logs.contains("deliver to rabbitmq ("), "the RabbitMQ outage was not noticed")
            #expect(faults.count == 7)
            print(
                "faults test: \(faults.count) faults (\(faults.joined(separator: "; "))), \(expected.count) rows, "
                    + "\(inserter.failures) write retries; " + figures.joined(separator: ", "))
        }

        /// Waits until `bridge` logged "streaming changes" `times` times (once per connect).
        private func waitForStreaming(_ bridge: BridgeProcess, times: Int) async throws {
            try await bridge.waitForLog("streaming changes", times: times)
        }

        private func kafkaIDs(_ topic: String, expected: Set<Int>) async throws -> [Int] {
            let deadline = ContinuousClock.now + .seconds(180)
            while true {
                let ids = try await KafkaCLI.consume(topic).compactMap { message in
                    (try? JSONSerialization.jsonObject(with: Data(message.value.utf8)) as? [String: Any])?
                        .after?["id"] as? Int
                }
                if Set(ids).isSuperset(of: expected) || ContinuousClock.now > deadline { return ids }
                try await Task.sleep(for: .seconds(1))
            }
        }

        /// Consumes the queue (acknowledging) until every expected row came or 180 s passed.
        private func rabbitIDs(queue: String, expected: Set<Int>) async throws -> [Int] {
            let url = try #require(AMQPCLI.url2)
            var ids: [Int] = []
            let deadline = ContinuousClock.now + .seconds(180)
            while !Set(ids).isSuperset(of: expected) && ContinuousClock.now < deadline {
                let wanted = max(1, expected.subtracting(ids).count)
                let messages = try await AMQPCLI.consume(url, queue: queue, count: wanted, timeout: .seconds(15))
                ids += messages.compactMap { $0.after?["id"] as? Int }
            }
            return ids
        }
    }
}

/// The configuration of the faults test: one pipe, four sinks.
struct FaultsSetup {
    static var servicesAvailable: Bool {
        PostgresPair.isAvailable && KafkaCLI.brokers != nil && AMQPCLI.url2 != nil && AMQPCLI.control2 != nil
            && RedisCLI.redis2URL != nil && RedisCLI.redis2Control != nil
    }

    let topic: String
    let queue: String
    let redisURL: String
    let redisKey: String
    let output: String
    let config: String

    init(name: String, directory: String, postgresPort: Int) throws {
        topic = "pg.\(name).ticks"
        queue = "test.\(name)"
        redisURL = try #require(RedisCLI.redis2URL)
        redisKey = "test:\(name)"
        output = "\(directory)/events.jsonl"
        config = "\(directory)/pgbridge.yaml"
        let brokers = try #require(KafkaCLI.brokers)
        let rabbitURL = try #require(AMQPCLI.url2)
        try """
        postgres:
          url: postgresql://postgres@127.0.0.1:\(postgresPort)/postgres
        state_dir: \(directory)/state
        pipes:
          - name: faults
            source:
              kind: replication
              tables: ["public.ticks"]
              slot: pgbridge_\(name)
              publication: pgbridge_\(name)
              status_interval: 1s
              receive_timeout: 4s
            sinks:
              - {kind: file, name: file, path: "\(output)"}
              - {kind: kafka, name: kafka, brokers: "\(brokers)", topic: "\(topic)"}
              - {kind: rabbitmq, name: rabbitmq, url: "\(rabbitURL)", queue: "\(queue)"}
              - {kind: redis, name: redis, url: "\(redisURL)", mode: stream, key: "\(redisKey)", timeout: 2s}
        """.write(toFile: config, atomically: true, encoding: .utf8)
    }
}
