import AMQPClient
import BridgeCore
import ForeignTables
import KafkaClient
import Logging
import Pipeline
import RedisClient
import WireProtocol

/// The tables pgbridge serves over the wire protocol: the configured Kafka topics, Redis
/// streams and RabbitMQ queues, and one `pipes.<pipe>` table per pipe (looked up each time:
/// pipes come and go through the HTTP API).
public final class BridgeCatalog: ForeignCatalog {
    private let fixed: [String: [any ForeignTable]]
    private let supervisor: PipeSupervisor?
    private let kafkaProducer: KafkaProducer?
    private let redis: RedisClient?
    private let rabbitmq: RabbitMQClient?
    private let maxScanBytes: Int
    public let schemas: [String]

    public init(config: WireConfig, supervisor: PipeSupervisor?, logger: Logger) throws {
        maxScanBytes = config.maxScanBytes
        // One client per system, shared by its tables.
        kafkaProducer = config.kafka.map { KafkaProducer(config: $0.connection, logger: logger) }
        redis = try config.redis.map { try RedisClient(config: $0.connection) }
        rabbitmq = try config.rabbitmq.map { try RabbitMQClient(config: $0.connection) }
        let maxRows = config.maxScanRows
        var fixed: [String: [any ForeignTable]] = [:]
        if let kafka = config.kafka, let producer = kafkaProducer {
            fixed["kafka"] = kafka.topics.map {
                KafkaTopicTable(topic: $0, config: kafka.connection, producer: producer, maxScanRows: maxRows)
            }
        }
        if let streams = config.redis?.streams, let client = redis {
            fixed["redis"] = streams.map { RedisStreamTable(stream: $0, client: client, maxScanRows: maxRows) }
        }
        if let rabbit = config.rabbitmq, let client = rabbitmq {
            fixed["rabbitmq"] = rabbit.queues.map {
                RabbitMQQueueTable(queue: $0, exchange: rabbit.exchange, client: client, maxScanRows: maxRows)
            }
        }
        self.fixed = fixed
        self.supervisor = config.pipes ? supervisor : nil
        schemas = ["kafka", "redis", "rabbitmq", "pipes"]
    }

    /// Connects the clients (they reconnect by themselves later when a connection drops).
    public func open() async throws {
        try await kafkaProducer?.open()
    }

    public func close() async {
        await kafkaProducer?.close()
    }

    public func tables(in schema: String) async -> [any ForeignTable] {
        if schema == "pipes" {
            guard let supervisor else { return [] }
            return await supervisor.statuses().map {
                PipeBufferTable(pipe: $0.name, supervisor: supervisor, maxBytes: maxScanBytes)
            }
        }
        return fixed[schema] ?? []
    }

    public func table(_ name: TableName) async -> (any ForeignTable)? {
        guard let schema = name.schema else { return nil }
        if schema == "pipes" {
            guard let supervisor, await supervisor.status(name.name) != nil else { return nil }
            return PipeBufferTable(pipe: name.name, supervisor: supervisor, maxBytes: maxScanBytes)
        }
        return fixed[schema]?.first { $0.name.name == name.name }
    }
}

/// `pipes.<pipe>`: the pipe's recent delivered events (the HTTP API's pull buffer), one row
/// per event, in the pipe's format (`event`) and split into columns.
final class PipeBufferTable: ForeignTable {
    let name: TableName
    let columns = [
        ForeignColumn("id", .text, notNull: true), ForeignColumn("op", .text), ForeignColumn("schema", .text),
        ForeignColumn("table", .text), ForeignColumn("key", .jsonb), ForeignColumn("before", .jsonb),
        ForeignColumn("after", .jsonb), ForeignColumn("commit_lsn", .pgLSN),
        ForeignColumn("commit_time", .timestamptz), ForeignColumn("event", .jsonb),
    ]
    let pipe: String
    let supervisor: PipeSupervisor
    let maxBytes: Int

    init(pipe: String, supervisor: PipeSupervisor, maxBytes: Int) {
        self.pipe = pipe
        self.supervisor = supervisor
        self.maxBytes = maxBytes
        name = TableName(schema: "pipes", name: pipe)
    }

    func estimatedRows() async -> Int {
        guard let buffer = await supervisor.buffer(pipe) else { return 0 }
        return Int(buffer.endPosition - buffer.startPosition)
    }

    func scan(_ request: ScanRequest) async throws -> any ForeignScan {
        guard let buffer = await supervisor.buffer(pipe) else {
            throw WireError(
                "55000", "pipe \(pipe) keeps no recent events",
                hint: "it has not started yet, or the event buffer is off (api.buffer_events: 0)")
        }
        let rows = try Self.readAll(buffer, pipe: pipe, rowLimit: request.rowLimit, maxBytes: maxBytes)
        return MaterializedScan(rows)
    }

    /// Every buffered event as a row (up to `rowLimit`), read page by page. When the oldest
    /// events are dropped while a later page is read, reading starts over without the rows read
    /// so far (they would come twice); a buffer that changes faster than it is read, or rows past
    /// `maxBytes`, fail the query with a hint. `betweenPages` is a seam for tests.
    static func readAll(
        _ buffer: PipeEventBuffer, pipe: String, rowLimit: Int?, maxBytes: Int, pageSize: Int = 1_000,
        betweenPages: () -> Void = {}
    ) throws -> [[SQLValue]] {
        var rows: [[SQLValue]] = []
        var bytes = 0
        var position: UInt64? = nil
        var restarts = 0
        while true {
            let page: PipeEventBuffer.Page
            do {
                page = try buffer.read(from: position, limit: pageSize)
            } catch {
                restarts += 1
                guard restarts <= 3 else {
                    throw WireError(
                        "55000", "the event buffer of pipe \(pipe) changed faster than it could be read",
                        hint: "query again, or read fewer events (a LIMIT)")
                }
                rows.removeAll(keepingCapacity: true)
                bytes = 0
                position = nil
                continue
            }
            for event in page.events {
                bytes += 64 + event.body.count * 3  // the event, and its columns parsed
                if bytes > maxBytes {
                    throw WireError(
                        "54000", "the scan of pipes.\(pipe) passed wire.max_scan_bytes (\(maxBytes) bytes)",
                        hint: "add a LIMIT, or raise wire.max_scan_bytes")
                }
                rows.append(row(event))
                if let rowLimit, rows.count >= rowLimit { return rows }
            }
            if page.events.count < pageSize { return rows }
            position = page.next
            betweenPages()
        }
    }

    func insert(_ rows: [[String: SQLValue]]) async throws -> [[String: SQLValue]] {
        throw WireError("0A000", "pipes.\(pipe) is read-only: it shows the events the pipe delivered")
    }

    static func row(_ event: PipeEventBuffer.Event) -> [SQLValue] {
        guard let document = JSONValue(parsing: String(decoding: event.body, as: UTF8.self)) else {
            return [.text(event.id), .null, .null, .null, .null, .null, .null, .null, .null, .null]
        }
        // Native and Debezium events carry these at the top; CloudEvents in `data`.
        let body =
            document["data"].flatMap { data -> JSONValue? in
                if case .object = data { return data }
                return nil
            } ?? document
        let source = body["source"]
        func text(_ value: JSONValue?) -> SQLValue { value?.unquotedText.map(SQLValue.text) ?? .null }
        func json(_ value: JSONValue?) -> SQLValue {
            guard let value, value != .null else { return .null }
            return .json(value)
        }
        var lsn = SQLValue.null
        if let commit = source?["commit_lsn"]?.unquotedText, let parsed = LSN(commit) { lsn = .lsn(parsed.value) }
        var time = SQLValue.null
        if let commitTime = source?["commit_time"]?.unquotedText,
            let value = try? SQLValue.parse(commitTime, as: .timestamptz)
        {
            time = value
        }
        return [
            .text(event.id), text(body["op"]), text(source?["schema"]), text(source?["table"]), json(body["key"]),
            json(body["before"]), json(body["after"]), lsn, time, .json(document),
        ]
    }
}
