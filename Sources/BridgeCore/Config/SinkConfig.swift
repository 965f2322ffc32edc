/// One sink of a pipe: its kind-specific settings plus what every sink shares.
public struct SinkConfig: Sendable {
    /// Unique within the pipe; names the sink in logs, metrics, routes and dead letters.
    public var name: String
    /// The registered kind (`kafka`, `redis`, …) that parsed `settings` and makes the sink.
    public var kind: String
    public var settings: any SinkSettings
    public var delivery: DeliveryOptions

    public init(name: String, kind: String, settings: any SinkSettings, delivery: DeliveryOptions = DeliveryOptions()) {
        self.name = name
        self.kind = kind
        self.settings = settings
        self.delivery = delivery
    }
}

/// Retries, dead letters and the in-flight window, the same for every sink kind.
public struct DeliveryOptions: Sendable, Equatable {
    /// How many times an event the remote side rejected (e.g. HTTP 500, a RabbitMQ nack) is
    /// sent again before it goes to the pipe's dead-letter target. Rejections that cannot
    /// succeed (HTTP 400, a message too large) go there at once. An unreachable sink is retried
    /// without limit: the pipe waits for it.
    public var retries: Int
    /// The first backoff; it doubles (with ±20 % jitter) up to `maxRetryInterval`.
    public var retryInterval: Duration
    public var maxRetryInterval: Duration
    /// Events sent but not yet confirmed by the remote side, at most.
    public var maxInFlight: Int

    public init(
        retries: Int = 3, retryInterval: Duration = .seconds(1), maxRetryInterval: Duration = .seconds(30),
        maxInFlight: Int = 10_000
    ) {
        self.retries = retries
        self.retryInterval = retryInterval
        self.maxRetryInterval = maxRetryInterval
        self.maxInFlight = maxInFlight
    }
}

/// TLS for Kafka, AMQP and Redis connections. Absent from the config = plaintext.
public struct TLSOptions: Sendable, Hashable {
    public var enabled: Bool
    public var skipVerifyServer: Bool
    /// PEM files; empty = the system's trust store / no client certificate.
    public var caFile: String
    public var certFile: String
    public var keyFile: String

    public init(
        enabled: Bool = false, skipVerifyServer: Bool = false, caFile: String = "", certFile: String = "",
        keyFile: String = ""
    ) {
        self.enabled = enabled
        self.skipVerifyServer = skipVerifyServer
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

/// How CloudEvents travel where the transport has headers (HTTP, Kafka).
public enum CloudEventsMode: String, Sendable, CaseIterable {
    /// The whole CloudEvent as one JSON document (`application/cloudevents+json`).
    case structured
    /// Attributes as `ce-*` headers, the event data as the body.
    case binary
}

public struct KafkaSinkConfig: SinkSettings {
    /// `host:port,host:port` (bootstrap servers).
    public var brokers: String
    public var topic: NameTemplate
    /// The message key; nil = the event's primary key as JSON (`{"id":1}`).
    public var key: NameTemplate?
    /// Messages per produce request (`batch.num.messages`).
    public var batchCount: Int
    /// How long the producer waits to fill a batch (`linger.ms`).
    public var linger: Duration
    /// none | gzip | snappy | lz4 | zstd
    public var compression: String
    public var sasl: SASLMechanism
    public var username: String
    /// Never logged.
    public var password: String
    public var tls: TLSOptions
    public var clientID: String
    /// How long librdkafka tries one message before reporting it failed (`message.timeout.ms`);
    /// pgbridge then produces it again, so nothing is lost.
    public var deliveryTimeout: Duration
    /// Extra librdkafka properties, passed as is.
    public var properties: [String: String]
    public var contentMode: CloudEventsMode

    public init(
        brokers: String, topic: NameTemplate, key: NameTemplate? = nil, batchCount: Int = 10_000,
        linger: Duration = .milliseconds(5), compression: String = "none", sasl: SASLMechanism = .none,
        username: String = "", password: String = "", tls: TLSOptions = TLSOptions(), clientID: String = "pgbridge",
        deliveryTimeout: Duration = .seconds(30), properties: [String: String] = [:],
        contentMode: CloudEventsMode = .structured
    ) {
        self.brokers = brokers
        self.topic = topic
        self.key = key
        self.batchCount = batchCount
        self.linger = linger
        self.compression = compression
        self.sasl = sasl
        self.username = username
        self.password = password
        self.tls = tls
        self.clientID = clientID
        self.deliveryTimeout = deliveryTimeout
        self.properties = properties
        self.contentMode = contentMode
    }

    /// Sinks with equal connection identities share one producer (the topic and key may differ).
    public var connectionIdentity: String {
        let props = properties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}")
        return [
            brokers, "\(batchCount)", "\(linger)", compression, sasl.rawValue, username, password, "\(tls)", clientID,
            "\(deliveryTimeout)", props,
        ].joined(separator: "\u{0}")
    }
}

public enum SASLMechanism: String, Sendable, CaseIterable {
    case none
    case plain
    case scramSHA256 = "scram-sha-256"
    case scramSHA512 = "scram-sha-512"
}

public struct RabbitMQSinkConfig: SinkSettings {
    /// `amqp://user:password@host:port/vhost` (`amqps://` for TLS). Never logged as is.
    public var url: String
    /// "" = the default exchange (the routing key names a queue).
    public var exchange: String
    public var routingKey: NameTemplate
    /// Declare a durable queue with this name (and bind it to `exchange` with `bindingKey`)
    /// before publishing; nil = declare nothing.
    public var queue: String?
    public var bindingKey: String
    /// Unroutable messages come back (basic.return) and count as rejected, instead of vanishing.
    public var mandatory: Bool
    /// delivery_mode 2: survives a broker restart (with durable queues).
    public var persistent: Bool
    public var heartbeat: Duration
    public var tls: TLSOptions

    public init(
        url: String, exchange: String = "", routingKey: NameTemplate, queue: String? = nil, bindingKey: String = "#",
        mandatory: Bool = true, persistent: Bool = true, heartbeat: Duration = .seconds(30),
        tls: TLSOptions = TLSOptions()
    ) {
        self.url = url
        self.exchange = exchange
        self.routingKey = routingKey
        self.queue = queue
        self.bindingKey = bindingKey
        self.mandatory = mandatory
        self.persistent = persistent
        self.heartbeat = heartbeat
        self.tls = tls
    }

    /// Sinks with equal connection identities share one AMQP connection.
    public var connectionIdentity: String {
        [url, "\(heartbeat)", "\(tls)"].joined(separator: "\u{0}")
    }
}

public enum RedisMode: String, Sendable, CaseIterable {
    /// XADD to a stream per key (with MAXLEN ~).
    case stream
    /// PUBLISH to a channel per key.
    case pubsub
    /// A hash per row mirroring its columns; deleted with the row.
    case hash
}

public struct RedisSinkConfig: SinkSettings {
    /// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). Never logged as is.
    public var url: String
    public var mode: RedisMode
    public var key: NameTemplate
    /// Streams are trimmed to about this many entries (`MAXLEN ~`); nil = never trimmed.
    public var maxLength: Int?
    /// Commands sent before their replies are read.
    public var pipeline: Int
    public var timeout: Duration

    public init(
        url: String, mode: RedisMode, key: NameTemplate, maxLength: Int? = nil, pipeline: Int = 1000,
        timeout: Duration = .seconds(10)
    ) {
        self.url = url
        self.mode = mode
        self.key = key
        self.maxLength = maxLength
        self.pipeline = pipeline
        self.timeout = timeout
    }

    /// Sinks with equal connection identities share one connection.
    public var connectionIdentity: String { [url, "\(timeout)"].joined(separator: "\u{0}") }

    public func problem(withFixedDestination destination: NameTemplate) -> String? {
        guard mode == .hash, !destination.dependsOnRowValues else { return nil }
        return "mirrors rows as hashes: the route's topic must name the row, e.g. \"orders:{key}\""
    }
}

/// Where events go that a sink rejected for good.
public enum DeadLetterConfig: Sendable {
    /// Rows of `pgbridge.dead_letters` (created by `pgbridge setup` / the extension).
    case table
    /// A file of JSON lines (`{"pipe":…,"sink":…,"reason":…,"attempts":…,"failed_at":…,"event":{…}}`),
    /// a Kafka topic, a RabbitMQ queue or a Redis stream: a sink kind that takes dead letters,
    /// with its settings.
    case sink(SinkConfig)
}
