import AMQPClient
import BridgeCore

extension RabbitMQSink {
    /// `kind: rabbitmq`: the connection (shared with the wire protocol's queue tables),
    /// `exchange`, `routing_key`, `queue` and publishing flags. Sinks with equal connection
    /// settings share one AMQP connection.
    public static let registration = SinkRegistration(
        kind: "rabbitmq", takesDeadLetters: true,
        parse: { node, keys, context in try parse(node, keys, context) },
        make: { settings, sink, context in
            let client = try context.clients.client(settings.connectionIdentity) {
                try RabbitMQClient(config: settings)
            }
            return RabbitMQSink(
                config: settings, client: client, maxInFlight: sink.delivery.maxInFlight,
                routeKeys: context.routeDestinations, logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys, _ context: SinkParseContext) throws
        -> RabbitMQSinkConfig
    {
        let pipe = context.pipe
        var config = try BridgeConfig.parseRabbitMQConnection(node, keys, pipe: pipe)
        config.routingKey = try BridgeConfig.template(keys["routing_key"], default: "{schema}.{table}.{op}", pipe: pipe)
        config.exchange = try keys["exchange"]?.string() ?? ""
        config.queue = try keys["queue"]?.string()
        if let queue = config.queue, keys["routing_key"] == nil, config.exchange.isEmpty {
            config.routingKey = try BridgeConfig.template(nil, default: queue, pipe: pipe)
        }
        if context.deadLetter, keys["routing_key"] == nil, config.queue == nil, config.exchange.isEmpty {
            // Dead-letter records are not change events: a queue of their own, by default.
            config.queue = "pgbridge.dead_letters"
            config.routingKey = try BridgeConfig.template(nil, default: "pgbridge.dead_letters", pipe: pipe)
        }
        config.bindingKey = try keys["binding_key"]?.string() ?? config.bindingKey
        config.mandatory = try keys["mandatory"]?.bool() ?? true
        config.persistent = try keys["persistent"]?.bool() ?? true
        return config
    }

}
