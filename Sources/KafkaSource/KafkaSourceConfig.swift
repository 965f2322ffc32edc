import BridgeCore

/// `kind: kafka` source settings.
public struct KafkaSourceConfig: SourceSettings {
    public enum Start: String, Sendable, CaseIterable {
        /// A group without committed offsets starts at each partition's first message.
        case earliest
        /// … at the partition's end: only messages produced from now on.
        case latest
    }

    /// Brokers, security and librdkafka properties (shared with the Kafka sink).
    public var connection: KafkaSinkConfig
    /// Group timing unless `properties` set it: a restarted pgbridge (after a crash, the old
    /// member never left) gets its partitions back after 10 s instead of librdkafka's 45.
    static let groupDefaults = [("session.timeout.ms", "10000"), ("heartbeat.interval.ms", "1000")]

    /// Topic names, or regular expressions starting with `^`.
    public var topics: [String]
    /// The consumer group (`group.id`).
    public var group: String
    public var start: Start
    /// At most this many messages per batch handed to the sinks.
    public var batchMessages: Int

    public init(
        connection: KafkaSinkConfig, topics: [String], group: String, start: Start = .earliest,
        batchMessages: Int = 2000
    ) {
        (self.connection, self.topics, self.group, self.start) = (connection, topics, group, start)
        self.batchMessages = batchMessages
    }
}
