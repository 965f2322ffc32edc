import AMQPClient
import BridgeCore
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

extension AMQPCLI {
    /// A publisher on `url` (a durable queue is declared on first use).
    static func client(_ url: String) throws -> RabbitMQClient {
        guard
            let config = try SinkFixture.parse("kind: rabbitmq, url: \"\(url)\"", retries: 0).settings
                as? RabbitMQSinkConfig
        else { throw TestFailure("expected a rabbitmq sink") }
        return try RabbitMQClient(config: config)
    }

    /// Publishes `bodies` to `queue` (persistent) and waits until the broker confirmed them all.
    static func publish(_ client: RabbitMQClient, queue: String, bodies: [[UInt8]]) async throws {
        try await client.run { connection in
            try connection.declare(queue: queue, exchange: "", bindingKey: "")
            var last: UInt64 = 0
            let routingKey = Array(queue.utf8)
            for body in bodies {
                last = try routingKey.withUnsafeBytes { key in
                    try body.withUnsafeBytes { bytes in
                        try connection.publish(
                            exchange: UnsafeRawBufferPointer(start: nil, count: 0), routingKey: key, body: bytes,
                            messageID: UnsafeRawBufferPointer(start: nil, count: 0),
                            type: UnsafeRawBufferPointer(start: nil, count: 0), mandatory: true, persistent: true)
                    }
                }
            }
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                switch try connection.nextEvent(timeout: .milliseconds(200)) {
                case .ack(let tag, let multiple) where tag == last || (multiple && tag >= last): return
                case .nack(let tag, _): throw TestFailure("the broker refused message \(tag)")
                case .returned(_, let reason): throw TestFailure("a message was returned: \(reason)")
                default: continue
                }
            }
            throw TestFailure("the broker did not confirm \(bodies.count) messages in 30 s")
        }
    }

    /// Up to `limit` messages of `queue` that nobody holds (they stay in the queue).
    static func ready(_ url: String, queue: String, limit: Int = 10) async throws -> [AMQPMessage] {
        let client = try client(url)
        defer { Task { await client.close() } }
        return try await client.run { try $0.peek(queue: queue, limit: limit) }
    }
}
