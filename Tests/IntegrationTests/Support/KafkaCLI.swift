import Foundation
import Testing

/// Reads Kafka back with kcat (a separate librdkafka consumer) and drives the mock cluster.
enum KafkaCLI {
    static var brokers: String? { TestEnvironment.kafkaBrokers }
    static var controlPath: String? { TestEnvironment.environment["PGBRIDGE_TEST_KAFKA_CONTROL"] }
    /// The second mock cluster, for tests that inject broker errors or take brokers down
    /// (`KafkaFaultTests`): faults there cannot hit the tests on the shared cluster.
    static var faultBrokers: String? { TestEnvironment.environment["PGBRIDGE_TEST_KAFKA_FAULTS_BROKERS"] }
    static var faultControlPath: String? { TestEnvironment.environment["PGBRIDGE_TEST_KAFKA_FAULTS_CONTROL"] }

    struct Message {
        var partition: Int
        var offset: Int
        var key: String
        var headers: String
        var value: String
    }

    /// Sends a command to the mock cluster (see scripts/lib/kafka-mock.c).
    static func control(_ command: String, path: String? = controlPath) throws {
        guard let path, let handle = FileHandle(forWritingAtPath: path) else {
            throw TestFailure("the Kafka mock's control FIFO is not available")
        }
        try handle.write(contentsOf: Data((command + "\n").utf8))
        try handle.close()
    }

    /// Every message of `topic`, partition by partition in offset order.
    static func consume(_ topic: String, brokers: String? = brokers) async throws -> [Message] {
        guard let brokers else { throw TestFailure("PGBRIDGE_TEST_KAFKA_BROKERS is not set") }
        let result = try await TestEnvironment.shellAsync(
            "kcat -C -b '\(brokers)' -t '\(topic)' -o beginning -e -q -f '%p\\t%o\\t%k\\t%h\\t%s\\n'")
        guard result.status == 0 else { throw TestFailure("kcat failed: \(result.output.prefix(2000))") }
        return result.output.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "\t", maxSplits: 4, omittingEmptySubsequences: false)
            guard parts.count == 5, let partition = Int(parts[0]), let offset = Int(parts[1]) else { return nil }
            return Message(
                partition: partition, offset: offset, key: String(parts[2]), headers: String(parts[3]),
                value: String(parts[4]))
        }
    }

    static func waitForMessages(
        _ topic: String, count: Int, timeout: Duration = .seconds(60), brokers: String? = brokers
    ) async throws -> [Message] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let messages = try await consume(topic, brokers: brokers)
            if messages.count >= count { return messages }
            if ContinuousClock.now > deadline {
                Issue.record(
                    "timed out after \(timeout) waiting for \(count) messages in \(topic): \(messages.count) so far")
                return messages
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}
