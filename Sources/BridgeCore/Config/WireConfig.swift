/// The PostgreSQL wire-protocol server (`wire:` section): the systems postgres_fdw can query
/// through pgbridge, and the logins it accepts.
public struct WireConfig: Sendable {
    public var host: String
    /// 0 = any free port (tests; the chosen port is logged).
    public var port: Int
    /// SCRAM-SHA-256 logins: user → password. Never logged.
    public var users: [String: String]
    /// What each user may read and write (`schema.table` or `schema.*`); a user without an
    /// entry reads and writes every table except `pipes.*`.
    public var grants: [String: WireGrants] = [:]
    public var kafka: WireKafkaConfig?
    public var redis: WireRedisConfig?
    public var rabbitmq: WireRabbitMQConfig?
    /// Serve `pipes.<pipe>` tables (the pipes' recent-event buffers).
    public var pipes: Bool
    /// The most rows one scan reads (a bound for unfiltered scans of large topics and streams).
    public var maxScanRows: Int
    /// The most bytes one query holds at once (rows to sort, a pipe's buffer read whole).
    public var maxScanBytes = 256 << 20

    public init(
        host: String = "127.0.0.1", port: Int = 6433, users: [String: String] = [:], kafka: WireKafkaConfig? = nil,
        redis: WireRedisConfig? = nil, rabbitmq: WireRabbitMQConfig? = nil, pipes: Bool = true,
        maxScanRows: Int = 1_000_000
    ) {
        self.host = host
        self.port = port
        self.users = users
        self.kafka = kafka
        self.redis = redis
        self.rabbitmq = rabbitmq
        self.pipes = pipes
        self.maxScanRows = maxScanRows
    }
}

/// `wire.kafka`: the cluster (connection settings as a Kafka sink's) and the topics served.
public struct WireKafkaConfig: Sendable {
    public var connection: KafkaSinkConfig
    public var topics: [WireKafkaTopic]

    public init(connection: KafkaSinkConfig, topics: [WireKafkaTopic]) {
        self.connection = connection
        self.topics = topics
    }
}

public struct WireKafkaTopic: Sendable, Equatable {
    public enum ValueType: String, Sendable, CaseIterable {
        /// `value jsonb`: a message that is not JSON is shown as a JSON string.
        case json
        case text
    }

    public var name: String
    public var value: ValueType

    public init(name: String, value: ValueType = .json) {
        self.name = name
        self.value = value
    }
}

/// `wire.redis`: the server and the streams served.
public struct WireRedisConfig: Sendable {
    public var connection: RedisSinkConfig
    public var streams: [String]

    public init(connection: RedisSinkConfig, streams: [String]) {
        self.connection = connection
        self.streams = streams
    }
}

/// `wire.rabbitmq`: the broker, the queues served (peeked without consuming), and the
/// exchange INSERT publishes to ("" = the default exchange, routed by queue name).
public struct WireRabbitMQConfig: Sendable {
    public var connection: RabbitMQSinkConfig
    public var queues: [String]
    public var exchange: String

    public init(connection: RabbitMQSinkConfig, queues: [String], exchange: String = "") {
        self.connection = connection
        self.queues = queues
        self.exchange = exchange
    }
}

extension WireConfig: CustomStringConvertible {
    /// A summary without secrets.
    public var description: String {
        var parts = ["listen \(host):\(port)", "users \(users.keys.sorted().joined(separator: ","))"]
        if let kafka { parts.append("kafka topics \(kafka.topics.map(\.name).joined(separator: ","))") }
        if let redis { parts.append("redis streams \(redis.streams.joined(separator: ","))") }
        if let rabbitmq { parts.append("rabbitmq queues \(rabbitmq.queues.joined(separator: ","))") }
        if pipes { parts.append("pipes") }
        return parts.joined(separator: ", ")
    }
}

/// The tables one wire-protocol user may read (SELECT, IMPORT FOREIGN SCHEMA) and write
/// (INSERT), as `schema.table` or `schema.*` patterns.
public struct WireGrants: Sendable, Equatable {
    public var read: [String]
    public var write: [String]

    public init(read: [String], write: [String]) {
        self.read = read
        self.write = write
    }

    /// Without grants in the configuration: every table except the pipes' event buffers, which
    /// hold row data of the database and must be granted by name (`pipes.*` or `pipes.<pipe>`).
    public static let unlisted = WireGrants(read: ["*"], write: ["*"])

    /// `*` is every schema but `pipes`.
    public static func matches(_ patterns: [String], schema: String, table: String) -> Bool {
        patterns.contains { $0 == "\(schema).*" || $0 == "\(schema).\(table)" || ($0 == "*" && schema != "pipes") }
    }
}
