import BridgeCore
import KafkaClient

extension KafkaSink {
    /// `kind: kafka`: the connection (shared with the wire protocol's topic tables), `topic`,
    /// `key`, batching and `content_mode`. Sinks with equal connection settings share a producer.
    public static let registration = SinkRegistration(
        kind: "kafka", takesDeadLetters: true,
        parse: { node, keys, context in try parse(node, keys, context) },
        make: { settings, _, context in
            let producer = context.clients.client(settings.connectionIdentity) {
                KafkaProducer(config: settings, logger: context.logger)
            }
            return KafkaSink(
                config: settings, producer: producer, format: context.format,
                routeTopics: context.routeDestinations, logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys, _ context: SinkParseContext) throws
        -> KafkaSinkConfig
    {
        let pipe = context.pipe
        var config = try BridgeConfig.parseKafkaConnection(node, keys, pipe: pipe)
        // Dead-letter records are not change events: their default topic needs no event fields.
        let defaultTopic = context.deadLetter ? "pgbridge.dead_letters" : "pg.{schema}.{table}"
        config.topic = try BridgeConfig.template(keys["topic"], default: defaultTopic, pipe: pipe)
        if let keyNode = keys["key"] { config.key = try BridgeConfig.template(keyNode, default: "", pipe: pipe) }
        try parseProducerTuning(keys, into: &config)
        config.contentMode = try BridgeConfig.enumValue(keys["content_mode"], default: .structured)
        return config
    }

    /// Batching and compression of a producer that sends change events.
    static func parseProducerTuning(_ keys: ConfigKeys, into config: inout KafkaSinkConfig) throws {
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

}
