import Foundation

extension BridgeConfig {
    /// A sink: its kind's settings, parsed by the kind's registration, and the delivery settings
    /// every kind has. The keys allowed are the ones these parsers read (see `ConfigNode.withKeys`).
    static func parseSink(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String, index: Int, count: Int) throws
        -> SinkConfig
    {
        let kinds = node.registry.sinkKinds.joined(separator: ", ")
        guard let kindNode = keys["kind"] else { throw node.error("missing kind: one of \(kinds)") }
        let kind = try kindNode.string()
        guard let registration = node.registry.sink(kind) else {
            throw kindNode.error("unknown sink kind '\(kind)'; expected one of: \(kinds)")
        }
        let name = try keys["name"]?.string() ?? (count == 1 ? kind : "\(kind)_\(index + 1)")
        guard Identifier.isSimple(name, maxLength: 63) else {
            throw keys["name"]!.error("'\(name)' is not a valid sink name: use lower-case letters, digits and _")
        }
        let settings = try registration.parse(node, keys, SinkParseContext(pipe: pipe))
        var delivery = DeliveryOptions()
        delivery.retries = try keys["retries"]?.int(range: 0...1_000_000) ?? registration.defaultRetries
        delivery.retryInterval = try keys["retry_interval"]?.duration() ?? delivery.retryInterval
        delivery.maxRetryInterval = try keys["max_retry_interval"]?.duration() ?? delivery.maxRetryInterval
        guard delivery.retryInterval >= .milliseconds(1), delivery.maxRetryInterval >= delivery.retryInterval else {
            throw node.error("retry_interval must be at least 1ms and at most max_retry_interval")
        }
        delivery.maxInFlight = try keys["max_in_flight"]?.int(range: 1...10_000_000) ?? delivery.maxInFlight
        return SinkConfig(name: name, kind: kind, settings: settings, delivery: delivery)
    }

    /// `table`, or a registered kind that takes dead letters (`file` when no kind is given). The
    /// target has no delivery settings: the dead-letter queue retries it without limit.
    static func parseDeadLetter(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws -> DeadLetterConfig {
        let kind = try keys["kind"]?.string() ?? "file"
        if kind == "table" { return .table }
        guard let registration = node.registry.sink(kind), registration.takesDeadLetters else {
            var kinds = node.registry.sinks.filter(\.takesDeadLetters).map(\.kind)
            kinds.insert("table", at: min(1, kinds.count))
            let listed = kinds.dropLast().joined(separator: ", ") + (kinds.count > 1 ? " or " : "") + (kinds.last ?? "")
            throw (keys["kind"] ?? node).error("unknown dead-letter kind '\(kind)'; expected \(listed)")
        }
        let settings = try registration.parse(node, keys, SinkParseContext(pipe: pipe, deadLetter: true))
        return .sink(SinkConfig(name: "dead_letter", kind: kind, settings: settings))
    }

    /// How to reach and log in to the cluster: what a Kafka sink and the wire protocol's Kafka
    /// tables share.
    public static func parseKafkaConnection(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws
        -> KafkaSinkConfig
    {
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

    /// The broker's URL, heartbeat and TLS: what a RabbitMQ sink and the wire protocol's queue
    /// tables share.
    public static func parseRabbitMQConnection(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws
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

    /// The server's URL and the command timeout: what a Redis sink and the wire protocol's
    /// stream tables share.
    public static func parseRedisConnection(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws
        -> RedisSinkConfig
    {
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

    // MARK: - Pieces

    public static func template(_ node: ConfigNode?, default text: String, pipe: String) throws -> NameTemplate {
        let source = try node?.string() ?? text
        do {
            return try NameTemplate(source, pipe: pipe)
        } catch {
            throw (node ?? ConfigNode.detached).error(error.message)
        }
    }

    public static func serviceURL(_ node: ConfigNode?, of parent: ConfigNode, schemes: [String], example: String) throws
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

    public static func parseTLS(_ node: ConfigNode?) throws -> TLSOptions {
        guard let node else { return TLSOptions() }
        return try node.withKeys { keys in
            TLSOptions(
                enabled: !(try keys["disable"]?.bool() ?? false),
                skipVerifyServer: try keys["skip_verify_server"]?.bool() ?? false,
                caFile: try keys["ca_file"]?.string() ?? "", certFile: try keys["cert_file"]?.string() ?? "",
                keyFile: try keys["key_file"]?.string() ?? "")
        }
    }

    /// One of an enumeration's raw values; `what` names it in the error (`unknown <what> 'x'`).
    public static func enumValue<T: RawRepresentable & CaseIterable>(
        _ node: ConfigNode?, default value: T, what: String = "value"
    ) throws -> T where T.RawValue == String {
        guard let node else { return value }
        let text = try node.string()
        guard let parsed = T(rawValue: text) else {
            throw node.error(
                "unknown \(what) '\(text)'; expected one of: \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return parsed
    }
}

extension ConfigNode {
    public static var detached: ConfigNode {
        ConfigNode(node: .scalar(.init("")), path: "", environment: [:], registry: ConfigRegistry(sinks: []))
    }

    /// A list, or (when allowed) one string of comma-separated items.
    public func list(orCommaSeparated: Bool) throws -> [String] {
        if case .scalar = node, orCommaSeparated {
            return try string().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
        }
        return try list().map { try $0.string() }
    }
}
