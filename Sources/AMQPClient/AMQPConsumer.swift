import BridgeCore

/// Consumes one queue with manual acknowledgements on a connection of its own, confined to
/// one queue (never Swift's cooperative pool). Heartbeats are answered while `next` waits, so
/// call it at least every heartbeat interval. A lost connection throws; `start` again
/// reconnects, and RabbitMQ delivers again what was not acknowledged.
public final class AMQPConsumer: Sendable {
    private let confined: Confined<AMQPConnection>
    public let queue: String
    public let prefetch: UInt16
    public let description: String

    public init(config: RabbitMQSinkConfig, queue: String, prefetch: UInt16 = 1_000) throws {
        let url = try ServiceURL.required(config.url, for: "rabbitmq")
        let connection = AMQPConnection(url: url, config: config)
        description = "\(connection.description) queue \(queue)"
        confined = Confined(connection, label: "pgbridge.rabbitmq.consumer")
        self.queue = queue
        self.prefetch = prefetch
    }

    /// Connects (again) and starts the consumer.
    public func start() async throws {
        try await confined.run { [queue, prefetch] connection in
            connection.abandon()
            try connection.startConsuming(queue: queue, prefetch: prefetch)
        }
    }

    /// The next message, waiting at most `timeout`; nil when none came.
    public func next(timeout: Duration) async throws -> ConsumedMessage? {
        try await confined.run { try $0.nextDelivery(timeout: timeout) }
    }

    /// Acknowledges `deliveryTag` (and every earlier one with `multiple`).
    public func acknowledge(_ deliveryTag: UInt64, multiple: Bool = false) async throws {
        try await confined.run { try $0.acknowledge(deliveryTag: deliveryTag, multiple: multiple) }
    }

    public func reject(_ deliveryTag: UInt64, requeue: Bool) async throws {
        try await confined.run { try $0.reject(deliveryTag: deliveryTag, requeue: requeue) }
    }

    /// Closes the connection: what was not acknowledged goes back to the queue.
    public func close() async {
        try? await confined.run { $0.disconnect() }
    }
}
