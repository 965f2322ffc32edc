import BridgeCore

extension KafkaSource {
    /// `kind: kafka`: the connection keys of the Kafka sink, `topics`, `group`, `start`,
    /// `batch_messages`; the table template may use `{topic}`.
    public static let registration = SourceRegistration(
        kind: "kafka", placeholders: ["topic"], defaultTable: "{topic}",
        parse: { node, keys, pipe in try parse(node, keys, pipe: pipe) },
        make: { settings, source, context in
            KafkaSource(settings: settings, source: source, pipe: context.pipe, logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws -> KafkaSourceConfig {
        let connection = try BridgeConfig.parseKafkaConnection(node, keys, pipe: pipe)
        guard let topicsNode = keys["topics"] else {
            throw node.error("missing topics: the topics to read, e.g. [sensors] or [\"^sensors\\\\..*\"]")
        }
        let topics = try topicsNode.list(orCommaSeparated: true)
        guard !topics.isEmpty, topics.allSatisfy({ !$0.isEmpty }) else {
            throw topicsNode.error("empty: name at least one topic")
        }
        for topic in topics where !topic.hasPrefix("^") {
            guard topic.utf8.count <= 249,
                topic.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
            else {
                throw topicsNode.error(
                    "'\(topic)' is not a Kafka topic name (letters, digits, '.', '_' and '-'); start a regular expression with ^"
                )
            }
        }
        let group = try keys["group"]?.string() ?? "pgbridge-\(pipe)"
        guard !group.isEmpty else { throw keys["group"]!.error("empty: name the consumer group") }
        let start = try BridgeConfig.enumValue(keys["start"], default: KafkaSourceConfig.Start.earliest)
        let batchMessages =
            try keys["batch_messages"]?.int(range: 1...100_000) ?? KafkaSourceConfig.defaultBatchMessages
        for property in ["group.id", "enable.auto.commit", "enable.auto.offset.store"]
        where connection.properties[property] != nil {
            throw (keys["properties"] ?? node).error(
                "\(property) is set by pgbridge (offsets are committed only after every sink confirmed): remove it")
        }
        return KafkaSourceConfig(
            connection: connection, topics: topics, group: group, start: start, batchMessages: batchMessages)
    }
}
