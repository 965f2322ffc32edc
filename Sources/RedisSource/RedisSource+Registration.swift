import BridgeCore

extension RedisSource {
    /// `kind: redis`: the connection keys of the Redis sink (`url`, `timeout`), `streams`,
    /// `group`, `consumer`, `start`, `claim_after`, `batch_messages`, `field`; the table
    /// template may use `{stream}`.
    public static let registration = SourceRegistration(
        kind: "redis", placeholders: ["stream"], defaultTable: "{stream}",
        parse: { node, keys, pipe in try parse(node, keys, pipe: pipe) },
        make: { settings, source, context in
            RedisSource(settings: settings, source: source, pipe: context.pipe, logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws -> RedisSourceConfig {
        let connection = try BridgeConfig.parseRedisConnection(node, keys, pipe: pipe)
        guard let streamsNode = keys["streams"] else {
            throw node.error("missing streams: the stream keys to read, e.g. [sensors]")
        }
        let streams = try streamsNode.list(orCommaSeparated: true)
        guard !streams.isEmpty, streams.allSatisfy({ !$0.isEmpty }) else {
            throw streamsNode.error("empty: name at least one stream key")
        }
        guard Set(streams).count == streams.count else { throw streamsNode.error("a stream is named twice") }
        let group = try keys["group"]?.string() ?? "pgbridge-\(pipe)"
        guard !group.isEmpty else { throw keys["group"]!.error("empty: name the consumer group") }
        let consumer = try keys["consumer"]?.string() ?? "pgbridge"
        guard !consumer.isEmpty else { throw keys["consumer"]!.error("empty: name this consumer of the group") }
        let start = try BridgeConfig.enumValue(keys["start"], default: RedisSourceConfig.Start.earliest)
        let claimAfter = try keys["claim_after"]?.duration() ?? .seconds(60)
        guard claimAfter >= .milliseconds(100) else {
            throw keys["claim_after"]!.error(
                "too short: entries would be taken from consumers that are still working on them; use 100ms or more")
        }
        let batchMessages = try keys["batch_messages"]?.int(range: 1...100_000) ?? 1000
        let field = try keys["field"]?.string()
        if let field, field.isEmpty { throw keys["field"]!.error("empty: name the entry field holding the message") }
        return RedisSourceConfig(
            connection: connection, streams: streams, group: group, consumer: consumer, start: start,
            claimAfter: claimAfter, batchMessages: batchMessages, field: field)
    }
}
