import BridgeCore

/// `kind: rabbitmq` source settings.
public struct RabbitMQSourceConfig: SourceSettings {
    /// URL, TLS and heartbeat (shared with the RabbitMQ sink).
    public var connection: RabbitMQSinkConfig
    /// The queue to consume (it must exist: pgbridge does not declare a queue it reads).
    public var queue: String
    /// At most this many deliveries unacknowledged at a time (`basic.qos`): what the broker
    /// hands out before the sinks confirmed.
    public var prefetch: Int
    /// At most this many messages per batch handed to the sinks.
    public var batchMessages: Int

    public init(connection: RabbitMQSinkConfig, queue: String, prefetch: Int = 1000, batchMessages: Int = 250) {
        (self.connection, self.queue, self.prefetch, self.batchMessages) = (connection, queue, prefetch, batchMessages)
    }
}
