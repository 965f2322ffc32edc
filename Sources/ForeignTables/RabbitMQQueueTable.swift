import AMQPClient
import BridgeCore
import WireProtocol

/// `rabbitmq.<queue>` over the wire protocol: SELECT peeks (every message goes back to the
/// queue); INSERT publishes to the configured exchange and waits for the confirmation.
public final class RabbitMQQueueTable: ForeignTable {
    public let name: TableName
    public let columns = [
        ForeignColumn("position", .int8, notNull: true), ForeignColumn("exchange", .text),
        ForeignColumn("routing_key", .text), ForeignColumn("headers", .jsonb), ForeignColumn("body", .text),
        ForeignColumn("redelivered", .bool),
    ]
    let queue: String
    let exchange: String
    let client: RabbitMQClient
    let maxScanRows: Int

    public init(queue: String, exchange: String, client: RabbitMQClient, maxScanRows: Int) {
        self.queue = queue
        self.exchange = exchange
        self.client = client
        self.maxScanRows = maxScanRows
        name = TableName(schema: "rabbitmq", name: queue)
    }

    public func estimatedRows() async -> Int { 1_000 }

    public func scan(_ request: ScanRequest) async throws -> any ForeignScan {
        let queue = queue
        // A peek takes messages off the queue until it ends (they go back when it closes): never
        // more than the query can use.
        let wanted = request.rowLimit.map { min($0, maxScanRows) }
        let limit = maxScanRows
        let peek: @Sendable (AMQPConnection) throws -> [AMQPMessage] = { connection in
            try connection.peek(queue: queue, limit: wanted ?? (limit + 1))
        }
        let messages: [AMQPMessage]
        do {
            messages = try await client.run(peek)
        } catch let error as SinkError where error.isRetriable {
            // A connection that went stale while idle fails once; a peek is safe to repeat.
            messages = try await client.run(peek)
        }
        guard messages.count <= limit else {
            throw WireError(
                "54000", "the peek of RabbitMQ queue \(queue) passed max_scan_rows (\(limit)) messages",
                hint: "raise wire.max_scan_rows to look at more of the queue")
        }
        let rows: [[SQLValue]] = messages.enumerated().map { index, message in
            [
                .int(Int64(index + 1)), .text(message.exchange), .text(message.routingKey),
                .json(.object(message.headers.map { ($0.0, $0.1.map(JSONValue.string) ?? .null) })),
                .text(String(decoding: message.body, as: UTF8.self)), .bool(message.redelivered),
            ]
        }
        return MaterializedScan(rows)
    }

    public func insert(_ rows: [[String: SQLValue]]) async throws -> [[String: SQLValue]] {
        for row in rows {
            if let position = row["position"], !position.isNull {
                throw WireError("428C9", "cannot insert into column \"position\": it is the order a peek saw")
            }
            if let given = row["exchange"]?.text, given != exchange {
                throw WireError(
                    "22023", "INSERT publishes to the configured exchange '\(exchange)', not '\(given)'",
                    hint: "leave exchange out, or set wire.rabbitmq.exchange")
            }
            var headers: [(String, String)] = []
            switch row["headers"] ?? .null {
            case .null: break
            case .json(.object(let members)): headers = members.map { ($0.0, $0.1.unquotedText ?? "") }
            default: throw WireError("22023", "headers must be a JSON object, e.g. '{\"source\": \"sql\"}'")
            }
            let routingKey = row["routing_key"]?.text ?? (exchange.isEmpty ? queue : "")
            // Through the default exchange the routing key is a queue name: an INSERT into
            // rabbitmq.<queue> reaches that queue and no other.
            if exchange.isEmpty, routingKey != queue {
                throw WireError(
                    "42501",
                    "an INSERT into rabbitmq.\(queue) publishes to queue \(queue) only, not to '\(routingKey)'",
                    hint: "leave routing_key out, or set wire.rabbitmq.exchange to publish through an exchange")
            }
            let body = Array((row["body"]?.text ?? "").utf8)
            let exchange = exchange
            let published = headers
            try await client.run { connection in
                try connection.publishConfirmed(
                    exchange: exchange, routingKey: routingKey, body: body, headers: published, timeout: .seconds(30))
            }
        }
        return rows.map { row in
            var written = row
            written["exchange"] = .text(exchange)
            if written["routing_key"]?.isNull ?? true { written["routing_key"] = .text(exchange.isEmpty ? queue : "") }
            return written
        }
    }
}
