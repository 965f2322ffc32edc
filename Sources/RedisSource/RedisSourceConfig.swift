import BridgeCore

/// `kind: redis` source settings.
public struct RedisSourceConfig: SourceSettings {
    public enum Start: String, Sendable, CaseIterable {
        /// A group pgbridge creates reads each stream from its first entry.
        case earliest
        /// … from the entries added after it was created.
        case latest
    }

    /// URL and command timeout (shared with the Redis sink).
    public var connection: RedisSinkConfig
    public var streams: [String]
    /// The consumer group (created on each stream when missing).
    public var group: String
    /// This reader's name in the group: a restarted pgbridge with the same name reads what it
    /// had not acknowledged first. Give each pgbridge reading one group its own name.
    public var consumer: String
    public var start: Start
    /// Entries another consumer of the group left unacknowledged this long are claimed
    /// (`XAUTOCLAIM`) and delivered.
    public var claimAfter: Duration
    /// At most this many entries per batch handed to the sinks.
    public var batchMessages: Int
    /// The entry field holding the message (nil: the entry's fields as one JSON object, or
    /// `event` with `format: native`).
    public var field: String?

    public init(
        connection: RedisSinkConfig, streams: [String], group: String, consumer: String = "pgbridge",
        start: Start = .earliest, claimAfter: Duration = .seconds(60), batchMessages: Int = 1000, field: String? = nil
    ) {
        (self.connection, self.streams, self.group, self.consumer) = (connection, streams, group, consumer)
        (self.start, self.claimAfter, self.batchMessages, self.field) = (start, claimAfter, batchMessages, field)
    }
}
