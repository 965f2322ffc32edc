import Foundation

/// Reads RabbitMQ queues back with amqp-tools (`amqp-consume`), and stops/starts the second node.
enum AMQPCLI {
    static var url2: String? { TestEnvironment.environment["PGBRIDGE_TEST_RABBITMQ2_URL"] }
    static var control2: String? { TestEnvironment.environment["PGBRIDGE_TEST_RABBITMQ2_CTL"] }

    /// Consumes (and acknowledges) `count` messages of `queue`, or what arrives within `timeout`.
    static func consume(_ url: String, queue: String, count: Int, timeout: Duration = .seconds(60)) async throws
        -> [[String: Any]]
    {
        let result = try await TestEnvironment.shellAsync(
            "timeout \(timeout.components.seconds) amqp-consume --url='\(url)' -q '\(queue)' -c \(count) -p 1000 awk 1")
        return result.output.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    static func control(_ action: String) async throws {
        guard let tool = control2 else { throw TestFailure("PGBRIDGE_TEST_RABBITMQ2_CTL is not set") }
        let result = try await TestEnvironment.shellAsync("'\(tool)' \(action)")
        guard result.status == 0 else { throw TestFailure("rabbitctl2 \(action) failed: \(result.output)") }
    }
}
