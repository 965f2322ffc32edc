import Foundation

extension BridgeConfig {
    static func parseWire(_ node: ConfigNode, _ keys: ConfigKeys) throws -> WireConfig {
        var wire = WireConfig()
        if let listen = keys["listen"] {
            (wire.host, wire.port) = try parseListen(listen)
        }
        guard let usersNode = keys["users"], case .mapping(let mapping) = usersNode.node, !mapping.isEmpty else {
            throw (keys["users"] ?? node).error(
                "missing users: postgres_fdw logs in with a password, e.g. users: {bridge: \"${PGBRIDGE_WIRE_PASSWORD}\"}"
            )
        }
        /// `read:`/`write:` grants: schema.table, schema.* or *.
        func patterns(_ list: ConfigNode?) throws -> [String] {
            guard let list else { return [] }
            return try list.list().map { item in
                let text = try item.string()
                let parts = text.split(separator: ".", omittingEmptySubsequences: false)
                guard
                    text == "*"
                        || (parts.count == 2
                            && ["kafka", "redis", "rabbitmq", "pipes"].contains(String(parts[0]))
                            && !parts[1].isEmpty)
                else {
                    throw item.error(
                        "expected schema.table, schema.* (schema kafka, redis, rabbitmq or pipes) or * (every table but the pipes'), got '\(text)'"
                    )
                }
                return text
            }
        }
        for (key, value) in mapping {
            guard let user = key.string, !user.isEmpty, user.utf8.count <= 63 else {
                throw usersNode.error("user names must be non-empty strings of at most 63 bytes")
            }
            let userNode = usersNode.child(user, value)
            var passwordNode = userNode
            if case .mapping = value {
                // {password: …, read: [kafka.*, pipes.orders], write: [kafka.audit]}
                passwordNode = try userNode.withKeys { userKeys in
                    guard let node = userKeys["password"] else { throw userNode.error("missing password") }
                    wire.grants[user] = WireGrants(
                        read: try patterns(userKeys["read"]), write: try patterns(userKeys["write"]))
                    return node
                }
            }
            let password = try passwordNode.string()
            guard password.utf8.count >= 8 else {
                throw passwordNode.error("the password of '\(user)' is too short: use at least 8 characters")
            }
            wire.users[user] = password
        }
        if let kafkaNode = keys["kafka"] {
            wire.kafka = try kafkaNode.parse(parseWireKafka)
        }
        if let redisNode = keys["redis"] {
            wire.redis = try redisNode.withKeys { redisKeys in
                let connection = try parseRedisConnection(redisNode, redisKeys, pipe: "wire")
                var streams: [String] = []
                for streamNode in try requiredList(redisKeys["streams"], of: redisNode, example: "streams: [sensor]") {
                    let name = try streamNode.string()
                    try checkTableName(name, streamNode, what: "stream")
                    guard !streams.contains(name) else { throw streamNode.error("stream '\(name)' is listed twice") }
                    streams.append(name)
                }
                return WireRedisConfig(connection: connection, streams: streams)
            }
        }
        if let rabbitNode = keys["rabbitmq"] {
            wire.rabbitmq = try rabbitNode.withKeys { rabbitKeys in
                var connection = try parseRabbitMQConnection(rabbitNode, rabbitKeys, pipe: "wire")
                connection.mandatory = false
                connection.exchange = try rabbitKeys["exchange"]?.string() ?? ""
                var queues: [String] = []
                for queueNode in try requiredList(rabbitKeys["queues"], of: rabbitNode, example: "queues: [alerts]") {
                    let name = try queueNode.string()
                    try checkTableName(name, queueNode, what: "queue")
                    guard !queues.contains(name) else { throw queueNode.error("queue '\(name)' is listed twice") }
                    queues.append(name)
                }
                return WireRabbitMQConfig(connection: connection, queues: queues, exchange: connection.exchange)
            }
        }
        wire.pipes = try keys["pipes"]?.bool() ?? true
        wire.maxScanRows = try keys["max_scan_rows"]?.int(range: 1...100_000_000) ?? wire.maxScanRows
        wire.maxScanBytes = try keys["max_scan_bytes"]?.int(range: 1 << 20...(64 << 30)) ?? wire.maxScanBytes
        return wire
    }

    /// `wire.kafka`: the connection of a Kafka sink (no topic, batching or format settings: each
    /// INSERT is sent at once) and the topics served as tables.
    static func parseWireKafka(_ kafkaNode: ConfigNode, _ kafkaKeys: ConfigKeys) throws -> WireKafkaConfig {
        var connection = try parseKafkaConnection(kafkaNode, kafkaKeys, pipe: "wire")
        connection.linger = .zero
        var topics: [WireKafkaTopic] = []
        for topicNode in try requiredList(kafkaKeys["topics"], of: kafkaNode, example: "topics: [sensor_readings]") {
            var topic: WireKafkaTopic
            if case .mapping = topicNode.node {
                topic = try topicNode.withKeys { topicKeys in
                    guard let name = topicKeys["name"] else { throw topicNode.error("missing name: the topic") }
                    var topic = WireKafkaTopic(name: try name.string())
                    topic.value = try enumValue(topicKeys["value"], default: .json)
                    return topic
                }
            } else {
                topic = WireKafkaTopic(name: try topicNode.string())
            }
            try checkTableName(topic.name, topicNode, what: "topic")
            guard !topics.contains(where: { $0.name == topic.name }) else {
                throw topicNode.error("topic '\(topic.name)' is listed twice")
            }
            topics.append(topic)
        }
        connection.topic = try template(nil, default: topics[0].name, pipe: "wire")
        return WireKafkaConfig(connection: connection, topics: topics)
    }

    private static func requiredList(_ node: ConfigNode?, of parent: ConfigNode, example: String) throws
        -> [ConfigNode]
    {
        guard let node else { throw parent.error("missing: list what to serve as tables, e.g. \(example)") }
        let items = try node.list()
        guard !items.isEmpty else { throw node.error("empty: list at least one, e.g. \(example)") }
        return items
    }

    /// Topic, stream and queue names become table names: PostgreSQL limits them to 63 bytes.
    private static func checkTableName(_ name: String, _ node: ConfigNode, what: String) throws {
        guard !name.isEmpty, name.utf8.count <= 63, !name.contains("\0") else {
            throw node.error(
                "the \(what) name '\(name)' cannot be a table name: it must be 1 to 63 bytes (PostgreSQL's limit)")
        }
    }
}
