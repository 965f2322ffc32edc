import BridgeCore
import RedisClient

extension RedisSink {
    /// `kind: redis`: the connection (shared with the wire protocol's stream tables), `mode`,
    /// `key`, `maxlen` and `pipeline`. Sinks with equal connection settings share a connection.
    public static let registration = SinkRegistration(
        kind: "redis", takesDeadLetters: true,
        parse: { node, keys, context in try parse(node, keys, context) },
        make: { settings, _, context in
            let client = try context.clients.client(settings.connectionIdentity) { try RedisClient(config: settings) }
            return RedisSink(
                config: settings, client: client, routeKeys: context.routeDestinations, logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys, _ context: SinkParseContext) throws
        -> RedisSinkConfig
    {
        let pipe = context.pipe
        var config = try BridgeConfig.parseRedisConnection(node, keys, pipe: pipe)
        let mode: RedisMode = try BridgeConfig.enumValue(keys["mode"], default: .stream)
        if context.deadLetter, mode != .stream {
            throw (keys["mode"] ?? node).error("a Redis dead-letter target must be a stream (mode: stream)")
        }
        // Dead-letter records are not change events: their default key needs no event fields.
        let defaultKey =
            context.deadLetter
            ? "pgbridge:dead_letters:{pipe}" : mode == .hash ? "pg:{schema}.{table}:{key}" : "pg:{schema}.{table}"
        config.mode = mode
        config.key = try BridgeConfig.template(keys["key"], default: defaultKey, pipe: pipe)
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

}
