import Foundation

extension BridgeConfig {
    static let sinkKinds = ["file", "kafka", "rabbitmq", "redis", "http"]

    /// A sink: its kind's settings and the delivery settings every kind has. The keys allowed are
    /// the ones these parsers read (see `ConfigNode.withKeys`).
    static func parseSink(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String, index: Int, count: Int) throws
        -> SinkConfig
    {
        guard let kindNode = keys["kind"] else {
            throw node.error("missing kind: one of \(sinkKinds.joined(separator: ", "))")
        }
        let kindText = try kindNode.string()
        guard sinkKinds.contains(kindText) else {
            throw kindNode.error(
                "unknown sink kind '\(kindText)'; expected one of: \(sinkKinds.joined(separator: ", "))")
        }
        let name = try keys["name"]?.string() ?? (count == 1 ? kindText : "\(kindText)_\(index + 1)")
        guard Identifier.isSimple(name, maxLength: 63) else {
            throw keys["name"]!.error("'\(name)' is not a valid sink name: use lower-case letters, digits and _")
        }
        let kind: SinkKind
        var delivery = DeliveryOptions()
        switch kindText {
        case "file": kind = .file(try parseFileSink(node, keys))
        case "kafka": kind = .kafka(try parseKafkaSink(node, keys, pipe: pipe))
        case "rabbitmq": kind = .rabbitmq(try parseRabbitMQSink(node, keys, pipe: pipe))
        case "redis": kind = .redis(try parseRedisSink(node, keys, pipe: pipe))
        default:
            kind = .http(try parseHTTPSink(node, keys))
            delivery.retries = 5
        }
        delivery.retries = try keys["retries"]?.int(range: 0...1_000_000) ?? delivery.retries
        delivery.retryInterval = try keys["retry_interval"]?.duration() ?? delivery.retryInterval
        delivery.maxRetryInterval = try keys["max_retry_interval"]?.duration() ?? delivery.maxRetryInterval
        guard delivery.retryInterval >= .milliseconds(1), delivery.maxRetryInterval >= delivery.retryInterval else {
            throw node.error("retry_interval must be at least 1ms and at most max_retry_interval")
        }
        delivery.maxInFlight = try keys["max_in_flight"]?.int(range: 1...10_000_000) ?? delivery.maxInFlight
        return SinkConfig(name: name, kind: kind, delivery: delivery)
    }

    static func parseFileSink(_ node: ConfigNode, _ keys: ConfigKeys) throws -> FileSinkConfig {
        guard let pathNode = keys["path"] else {
            throw node.error("missing path: a file path, or \"-\" for stdout")
        }
        var path = try pathNode.string()
        guard !path.isEmpty else { throw pathNode.error("empty path: a file path, or \"-\" for stdout") }
        if case .api(let stateDirectory) = node.trust {
            path = try confined(path, to: stateDirectory, node: pathNode)
        }
        return FileSinkConfig(path: path, fsync: try keys["fsync"]?.bool() ?? true)
    }

    static func parseKafkaSink(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws
        -> KafkaSinkConfig
    {
        var config = try parseKafkaConnection(node, keys, pipe: pipe)
        config.topic = try template(keys["topic"], default: "pg.{schema}.{table}", pipe: pipe)
        if let keyNode = keys["key"] { config.key = try template(keyNode, default: "", pipe: pipe) }
        try parseKafkaProducerTuning(keys, into: &config)
        config.contentMode = try enumValue(keys["content_mode"], default: .structured)
        return config
    }

    /// Batching and compression of a producer that sends change events.
    static func parseKafkaProducerTuning(_ keys: ConfigKeys, into config: inout KafkaSinkConfig) throws {
        config.batchCount = try keys["batch_count"]?.int(range: 1...1_000_000) ?? config.batchCount
        config.linger = try keys["linger"]?.duration() ?? config.linger
        if let compressionNode = keys["compression"] {
            let text = try compressionNode.string()
            guard ["none", "gzip", "snappy", "lz4", "zstd"].contains(text) else {
                throw compressionNode.error("unknown compression '\(text)'; expected none, gzip, snappy, lz4 or zstd")
            }
            config.compression = text
        }
    }

    /// How to reach and log in to the cluster: what a Kafka sink and the wire protocol's Kafka
    /// tables share.
    static func parseKafkaConnection(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws -> KafkaSinkConfig {
        guard let brokersNode = keys["brokers"] else {
            throw node.error("missing brokers: the bootstrap servers, e.g. kafka1:9092,kafka2:9092")
        }
        let brokers = try brokersNode.list(orCommaSeparated: true).joined(separator: ",")
        guard !brokers.isEmpty else { throw brokersNode.error("empty: list at least one broker as host:port") }
        var config = KafkaSinkConfig(
            brokers: brokers, topic: try template(nil, default: "pg.{schema}.{table}", pipe: pipe))
        config.sasl = try enumValue(keys["sasl"], default: .none)
        config.username = try keys["username"]?.string() ?? ""
        config.password = try keys["password"]?.string() ?? ""
        if config.sasl != .none, config.username.isEmpty {
            throw (keys["sasl"] ?? node).error("sasl \(config.sasl.rawValue) needs username and password")
        }
        config.tls = try parseTLS(keys["tls"])
        config.clientID = try keys["client_id"]?.string() ?? config.clientID
        config.deliveryTimeout = try keys["delivery_timeout"]?.duration() ?? config.deliveryTimeout
        guard config.deliveryTimeout >= .seconds(1) else {
            throw keys["delivery_timeout"]!.error("must be at least 1s")
        }
        let allowUnsafe = try keys["allow_unsafe_properties"]?.bool() ?? false
        if allowUnsafe, case .api = node.trust {
            throw keys["allow_unsafe_properties"]!.error(
                "not allowed in a pipe created through the API: only the configuration file may allow such properties")
        }
        if let propertiesNode = keys["properties"] {
            guard case .mapping(let mapping) = propertiesNode.node else {
                throw propertiesNode.error("expected a mapping of librdkafka properties")
            }
            for (key, value) in mapping {
                guard let name = key.string else { throw propertiesNode.error("keys must be strings") }
                let property = propertiesNode.child(name, value)
                try KafkaPropertyPolicy.check(name, trust: node.trust, allowUnsafe: allowUnsafe, node: property)
                config.properties[name] = try property.string()
            }
        }
        return config
    }

    static func parseRabbitMQSink(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws
        -> RabbitMQSinkConfig
    {
        var config = try parseRabbitMQConnection(node, keys, pipe: pipe)
        config.routingKey = try template(keys["routing_key"], default: "{schema}.{table}.{op}", pipe: pipe)
        config.exchange = try keys["exchange"]?.string() ?? ""
        config.queue = try keys["queue"]?.string()
        if let queue = config.queue, keys["routing_key"] == nil, config.exchange.isEmpty {
            config.routingKey = try template(nil, default: queue, pipe: pipe)
        }
        config.bindingKey = try keys["binding_key"]?.string() ?? config.bindingKey
        config.mandatory = try keys["mandatory"]?.bool() ?? true
        config.persistent = try keys["persistent"]?.bool() ?? true
        return config
    }

    /// The broker's URL, heartbeat and TLS: what a RabbitMQ sink and the wire protocol's queue
    /// tables share.
    static func parseRabbitMQConnection(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws
        -> RabbitMQSinkConfig
    {
        let url = try serviceURL(
            keys["url"], of: node, schemes: ["amqp", "amqps"], example: "amqp://guest:guest@127.0.0.1:5672/")
        var config = RabbitMQSinkConfig(
            url: url, routingKey: try template(nil, default: "{schema}.{table}.{op}", pipe: pipe))
        config.heartbeat = try keys["heartbeat"]?.duration() ?? config.heartbeat
        config.tls = try parseTLS(keys["tls"])
        if url.lowercased().hasPrefix("amqps://") { config.tls.enabled = true }
        return config
    }

    static func parseRedisSink(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws
        -> RedisSinkConfig
    {
        var config = try parseRedisConnection(node, keys, pipe: pipe)
        let mode: RedisMode = try enumValue(keys["mode"], default: .stream)
        let defaultKey = mode == .hash ? "pg:{schema}.{table}:{key}" : "pg:{schema}.{table}"
        config.mode = mode
        config.key = try template(keys["key"], default: defaultKey, pipe: pipe)
        if mode == .hash, !config.key.dependsOnRowValues {
            throw (keys["key"] ?? node).error(
                "a hash key must name the row, e.g. \"pg:{schema}.{table}:{key}\": otherwise every row overwrites one hash"
            )
        }
        config.maxLength = try keys["maxlen"]?.int(range: 1...Int(Int32.max))
        if config.maxLength != nil, mode != .stream {
            throw keys["maxlen"]!.error("maxlen applies to mode: stream only")
        }
        config.pipeline = try keys["pipeline"]?.int(range: 1...100_000) ?? config.pipeline
        return config
    }

    /// The server's URL and the command timeout: what a Redis sink and the wire protocol's
    /// stream tables share.
    static func parseRedisConnection(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws -> RedisSinkConfig {
        let url = try serviceURL(
            keys["url"], of: node, schemes: ["redis", "rediss"], example: "redis://127.0.0.1:6379/0")
        if let parsed = ServiceURL(url), let db = parsed.path, Int(db) == nil {
            throw keys["url"]!.error("'/\(db)' is not a database number: write redis://host:port/0")
        }
        var config = RedisSinkConfig(
            url: url, mode: .stream, key: try template(nil, default: "pg:{schema}.{table}", pipe: pipe))
        config.timeout = try keys["timeout"]?.duration() ?? config.timeout
        return config
    }

    static func parseHTTPSink(_ node: ConfigNode, _ keys: ConfigKeys) throws -> HTTPSinkConfig {
        guard let urlNode = keys["url"] else { throw node.error("missing url, e.g. https://hooks.example.com/pg") }
        let url = try urlNode.string()
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw urlNode.error("expected an http:// or https:// URL")
        }
        var config = HTTPSinkConfig(url: url)
        if let methodNode = keys["method"] {
            let method = try methodNode.string().uppercased()
            guard ["POST", "PUT", "PATCH"].contains(method) else {
                throw methodNode.error("method must be POST, PUT or PATCH")
            }
            config.method = method
        }
        if let headersNode = keys["headers"] {
            guard case .mapping(let mapping) = headersNode.node else {
                throw headersNode.error("expected a mapping of header names to values")
            }
            for (key, value) in mapping {
                guard let name = key.string, !name.isEmpty else {
                    throw headersNode.error("header names must be strings")
                }
                config.headers.append((name, try headersNode.child(name, value).string()))
            }
        }
        config.template = try keys["template"]?.string()
        if let template = config.template {
            do {
                _ = try BodyTemplate(template)
            } catch {
                throw keys["template"]!.error(error.message)
            }
        }
        config.preset = try enumValue(keys["preset"], default: .none)
        if config.preset == .slack, config.template == nil {
            throw (keys["preset"] ?? node).error(
                "preset slack needs a template: the message text, e.g. \"{{ .after.name }} changed\"")
        }
        config.batchCount = try keys["batch_count"]?.int(range: 1...100_000) ?? 1
        if config.batchCount > 1, config.template != nil {
            throw keys["batch_count"]!.error(
                "batch_count > 1 sends a JSON array of events: it cannot be combined with template")
        }
        config.parallelism = try keys["parallelism"]?.int(range: 1...1024) ?? 1
        config.timeout = try keys["timeout"]?.duration() ?? config.timeout
        if let oauthNode = keys["oauth2"] {
            config.oauth2 = try oauthNode.withKeys { oauth in
                // Every key is read (and checked) even when disabled: none is accepted and ignored.
                let enabled = try oauth["enabled"]?.bool() ?? true
                let tokenURL = try oauth["token_url"]?.string() ?? ""
                let clientKey = try oauth["client_key"]?.string() ?? ""
                let clientSecret = try oauth["client_secret"]?.string() ?? ""
                let scopes = try oauth["scopes"]?.list(orCommaSeparated: false) ?? []
                guard enabled else { return nil }
                guard !tokenURL.isEmpty else { throw oauthNode.error("missing token_url: the OAuth2 token endpoint") }
                guard !clientKey.isEmpty else { throw oauthNode.error("missing client_key") }
                return OAuth2Config(
                    clientKey: clientKey, clientSecret: clientSecret, tokenURL: tokenURL, scopes: scopes)
            }
        }
        config.contentMode = try enumValue(keys["content_mode"], default: .structured)
        return config
    }

    static func parseDeadLetter(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws
        -> DeadLetterConfig
    {
        let kind = try keys["kind"]?.string() ?? "file"
        switch kind {
        case "file":
            return .file(try parseFileSink(node, keys))
        case "table":
            return .table
        case "kafka", "rabbitmq", "redis":
            var sink = try parseSink(node, keys, pipe: pipe, index: 0, count: 1)
            // Dead-letter records are not change events: default names that need no event fields.
            switch sink.kind {
            case .kafka(var kafka):
                if keys["topic"] == nil {
                    kafka.topic = try template(nil, default: "pgbridge.dead_letters", pipe: pipe)
                }
                sink.kind = .kafka(kafka)
            case .redis(let redis):
                guard redis.mode == .stream else {
                    throw (keys["mode"] ?? node).error("a Redis dead-letter target must be a stream (mode: stream)")
                }
                var copy = redis
                if keys["key"] == nil {
                    copy.key = try template(nil, default: "pgbridge:dead_letters:{pipe}", pipe: pipe)
                }
                sink.kind = .redis(copy)
            case .rabbitmq(var rabbit):
                if keys["routing_key"] == nil, keys["queue"] == nil, rabbit.exchange.isEmpty {
                    rabbit.queue = "pgbridge.dead_letters"
                    rabbit.routingKey = try template(nil, default: "pgbridge.dead_letters", pipe: pipe)
                }
                sink.kind = .rabbitmq(rabbit)
            default:
                break
            }
            return .sink(SinkConfig(name: "dead_letter", kind: sink.kind, delivery: sink.delivery))
        default:
            throw (keys["kind"] ?? node).error(
                "unknown dead-letter kind '\(kind)'; expected file, table, kafka, rabbitmq or redis")
        }
    }

    // MARK: - Pieces

    static func template(_ node: ConfigNode?, default text: String, pipe: String) throws -> NameTemplate {
        let source = try node?.string() ?? text
        do {
            return try NameTemplate(source, pipe: pipe)
        } catch {
            throw (node ?? ConfigNode.detached).error(error.message)
        }
    }

    static func serviceURL(_ node: ConfigNode?, of parent: ConfigNode, schemes: [String], example: String) throws
        -> String
    {
        guard let node else { throw parent.error("missing url, e.g. \(example)") }
        let text = try node.string()
        guard let url = ServiceURL(text), schemes.contains(url.scheme) else {
            throw node.error(
                "expected a \(schemes.map { "\($0)://" }.joined(separator: " or ")) URL such as \(example)")
        }
        return text
    }

    static func parseTLS(_ node: ConfigNode?) throws -> TLSOptions {
        guard let node else { return TLSOptions() }
        return try node.withKeys { keys in
            TLSOptions(
                enabled: !(try keys["disable"]?.bool() ?? false),
                skipVerifyServer: try keys["skip_verify_server"]?.bool() ?? false,
                caFile: try keys["ca_file"]?.string() ?? "", certFile: try keys["cert_file"]?.string() ?? "",
                keyFile: try keys["key_file"]?.string() ?? "")
        }
    }

    static func enumValue<T: RawRepresentable & CaseIterable>(_ node: ConfigNode?, default value: T) throws -> T
    where T.RawValue == String {
        guard let node else { return value }
        let text = try node.string()
        guard let parsed = T(rawValue: text) else {
            throw node.error(
                "unknown value '\(text)'; expected one of: \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return parsed
    }
}

extension ConfigNode {
    static var detached: ConfigNode { ConfigNode(node: .scalar(.init("")), path: "", environment: [:]) }

    /// A list, or (when allowed) one string of comma-separated items.
    func list(orCommaSeparated: Bool) throws -> [String] {
        if case .scalar = node, orCommaSeparated {
            return try string().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
        }
        return try list().map { try $0.string() }
    }
}
