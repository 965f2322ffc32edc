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
    /// librdkafka settings unless `properties` set them. Group timing: a restarted pgbridge
    /// (after a crash, the old member never left) gets its partitions back after 10 s instead
    /// of librdkafka's 45. Prefetch: with librdkafka's 100,000 messages the fetcher stalls
    /// whenever that many wait, and a backlog is read at about a quarter of the speed the
    /// brokers serve it (scripts/bench-ingest); 300,000 keeps it reading, for about 100 MiB
    /// more at the peak with 150-byte messages (`queued.max.messages.kbytes` still bounds the
    /// bytes).
    static let groupDefaults = [
        ("session.timeout.ms", "10000"), ("heartbeat.interval.ms", "1000"), ("queued.min.messages", "300000"),
    ]

    /// Topic names, or regular expressions starting with `^`.
    public var topics: [String]
    /// The consumer group (`group.id`).
    public var group: String
    public var start: Start
    /// At most this many messages per batch handed to the sinks.
    public var batchMessages: Int

    /// 10,000: the pipe delivers what the source's queue (four batches) holds as one group, and
    /// a Kafka sink waits for each group's acknowledgements, one produce request per partition.
    /// With batches of 2,000 a group was about 8,000 messages and a masked copy of a topic of
    /// 64 partitions ran at 105,000 messages/s; with 10,000, 200,000 (docs/benchmarks.md), for
    /// about 60 MiB more peak memory.
    public static let defaultBatchMessages = 10_000

    public init(
        connection: KafkaSinkConfig, topics: [String], group: String, start: Start = .earliest,
        batchMessages: Int = KafkaSourceConfig.defaultBatchMessages
    ) {
        (self.connection, self.topics, self.group, self.start) = (connection, topics, group, start)
        self.batchMessages = batchMessages
    }
}
