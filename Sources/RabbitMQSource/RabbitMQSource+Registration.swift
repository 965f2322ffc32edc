import BridgeCore

extension RabbitMQSource {
    /// `kind: rabbitmq`: the connection keys of the RabbitMQ sink (`url`, `tls`, `heartbeat`),
    /// `queue`, `prefetch`, `batch_messages`; the table template may use `{queue}`.
    public static let registration = SourceRegistration(
        kind: "rabbitmq", placeholders: ["queue"], defaultTable: "{queue}",
        parse: { node, keys, pipe in try parse(node, keys, pipe: pipe) },
        make: { settings, source, context in
            RabbitMQSource(settings: settings, source: source, pipe: context.pipe, logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws -> RabbitMQSourceConfig {
        let connection = try BridgeConfig.parseRabbitMQConnection(node, keys, pipe: pipe)
        guard let queueNode = keys["queue"] else {
            throw node.error("missing queue: the queue to consume, e.g. queue: sensors")
        }
        let queue = try queueNode.string()
        guard !queue.isEmpty, queue.utf8.count <= 255 else {
            throw queueNode.error("'\(queue)' is not a queue name (1 to 255 bytes)")
        }
        let prefetch = try keys["prefetch"]?.int(range: 1...65_535) ?? 1000
        // A quarter of the prefetch: four batches in flight keep the broker delivering while
        // the sinks confirm (scripts/bench-ingest: 40,000 messages/s into Redis, half with 500).
        let batchMessages = try keys["batch_messages"]?.int(range: 1...65_535) ?? max(1, prefetch / 4)
        guard batchMessages <= prefetch else {
            throw keys["batch_messages"]!.error(
                "\(batchMessages) is more than prefetch (\(prefetch)): a batch can hold at most what the broker hands out unacknowledged"
            )
        }
        return RabbitMQSourceConfig(
            connection: connection, queue: queue, prefetch: prefetch, batchMessages: batchMessages)
    }
}
