import BridgeCore
import Foundation
import KafkaClient
import Testing

extension KafkaClusterSuites {
    /// Two pgbridge processes in one consumer group, with the real binary on the mock cluster.
    @Suite("Kafka source rebalances", .enabled(if: TestEnvironment.hasPostgres && KafkaCLI.brokers != nil))
    struct KafkaSourceRebalanceTests {
        /// The first process is stuck delivering (its sink refuses for a while) when a second one
        /// joins the group and takes some of its partitions; then the first is SIGKILLed with its
        /// batches unconfirmed, and the second takes every partition. Offsets are committed only
        /// for confirmed batches, so the second reads everything the first had read from the
        /// group's start: every message reaches the sink, none lost.
        @Test func partitionsTakenAwayDuringADeliveryLoseNothing() async throws {
            let topic = "rebalance_\(UUID().uuidString.prefix(8).lowercased())"
            try KafkaCLI.control("topic \(topic) 6")
            // The sink refuses until the first process is killed, however long the group takes to
            // rebalance on a loaded machine.
            let server = try await HookServer.start(HookServer.Behaviour(failures: 1_000_000))
            defer { Task { await server.stop() } }
            let producer = try await KafkaSourceTests.producer()
            _ = try await producer.produce(
                (0..<12_000).map { n in
                    KafkaRecord(topic: topic, partition: Int32(n % 6), value: Array(#"{"n":\#(n)}"#.utf8))
                })
            await producer.close()
            func launch(_ name: String) throws -> BridgeProcess {
                let directory = try TestEnvironment.scratchDirectory("rebalance-\(name)")
                let config = try ConfigFile.write(
                    """
                    postgres: {url: "\(TestEnvironment.postgresURL ?? "")"}
                    state_dir: \(directory)/state
                    pipes:
                      - name: members
                        source: {kind: kafka, brokers: "\(KafkaCLI.brokers ?? "")", topics: [\(topic)], group: g_\(topic), batch_messages: 500}
                        sinks:
                          - {kind: http, url: "\(server.url)", batch_count: 500, retries: 1000, retry_interval: 200ms, max_retry_interval: 300ms}
                    """, in: directory)
                return try BridgeProcess.run(config: config, directory: directory)
            }
            let first = try launch("first")
            defer { first.kill(SIGKILL) }
            try await waitFor("the first process delivering into a refusing sink", timeout: .seconds(60)) {
                server.received.count >= 5
            }
            let second = try launch("second")
            defer { second.kill(SIGKILL) }
            try await waitFor("the second process assigned partitions", timeout: .seconds(60)) {
                second.stderr.contains("the group assigned partitions")
            }
            #expect(server.delivered.isEmpty, "the first process delivered nothing yet")
            first.kill(SIGKILL)
            #expect(try await first.waitForExit() != 0)
            server.refuse(next: 0)
            func delivered() -> Set<Int> {
                Set(
                    server.delivered.compactMap {
                        (try? JSONSerialization.jsonObject(with: Data($0.body.utf8))) as? [[String: Any]]
                    }.flatMap { $0 }.compactMap { $0.after?["n"] as? Int })
            }
            do {
                try await waitFor("every message delivered", timeout: .seconds(120)) { delivered().count >= 12_000 }
            } catch {
                let missing = Set(0..<12_000).subtracting(delivered())
                print(
                    "messages never delivered: \(missing.count), by partition \(Dictionary(grouping: missing, by: { $0 % 6 }).mapValues(\.count))"
                )
                throw error
            }
            second.kill(SIGTERM)
            #expect(try await second.waitForExit() == 0)
            #expect(delivered() == Set(0..<12_000), "the first process's unconfirmed batches were read again")
            #expect(
                server.received.count(where: { $0.status == 503 }) >= 5, "the sink refused while the group rebalanced")
        }
    }
}
