import BridgeCore
import RedisClient
import Synchronization
import WireProtocol

/// `redis.<stream>` over the wire protocol: id ranges of the WHERE clause become XRANGE
/// bounds; INSERT is XADD.
public final class RedisStreamTable: ForeignTable {
    public let name: TableName
    public let columns = [ForeignColumn("id", .text, notNull: true), ForeignColumn("fields", .jsonb)]
    let stream: String
    let client: RedisClient
    let maxScanRows: Int

    public init(stream: String, client: RedisClient, maxScanRows: Int) {
        self.stream = stream
        self.client = client
        self.maxScanRows = maxScanRows
        name = TableName(schema: "redis", name: stream)
    }

    public func estimatedRows() async -> Int {
        let stream = stream
        let length = try? await client.run { connection, _ in try connection.query(["XLEN", stream]) }
        if case .integer(let count) = length { return Int(count) }
        return 1_000
    }

    public func scan(_ request: ScanRequest) async throws -> any ForeignScan {
        var start = "-"
        var end = "+"
        if let bounds = request.bounds["id"] {
            if let values = bounds.values {
                let ids = values.compactMap { $0.text.flatMap(Self.streamID) }.sorted { $0 < $1 }
                guard let first = ids.first, let last = ids.last else { return RedisStreamScan.empty }
                start = "\(first.0)-\(first.1)"
                end = "\(last.0)-\(last.1)"
            } else {
                if let lower = bounds.lower?.text, let id = Self.streamID(lower) {
                    start = (bounds.lowerInclusive ? "" : "(") + "\(id.0)-\(id.1)"
                }
                if let upper = bounds.upper?.text, let id = Self.streamID(upper) {
                    end = (bounds.upperInclusive ? "" : "(") + "\(id.0)-\(id.1)"
                }
            }
        }
        return RedisStreamScan(stream: stream, client: client, start: start, end: end, maxRows: maxScanRows)
    }

    static func streamID(_ text: String) -> (UInt64, UInt64)? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, let ms = UInt64(parts[0]) else { return nil }
        if parts.count == 1 { return (ms, 0) }
        guard let seq = UInt64(parts[1]) else { return nil }
        return (ms, seq)
    }

    public func insert(_ rows: [[String: SQLValue]]) async throws -> [[String: SQLValue]] {
        var commands: [[String]] = []
        for row in rows {
            guard case .json(.object(let members)) = row["fields"] ?? .null, !members.isEmpty else {
                throw WireError(
                    "23502", "fields must be a non-empty JSON object, e.g. '{\"temp\": \"21.5\"}'",
                    hint: "a Redis stream entry needs at least one field")
            }
            var command = ["XADD", stream, (row["id"] ?? .null).text ?? "*"]
            for (field, value) in members {
                command.append(field)
                command.append(value.unquotedText ?? "")
            }
            commands.append(command)
        }
        let stream = stream
        let batch = commands
        let replies = try await client.run { connection, _ in
            try batch.map { try connection.query($0) }
        }
        var written: [[String: SQLValue]] = []
        for (row, reply) in zip(rows, replies) {
            guard let id = reply.text, let parsed = Self.streamID(id) else {
                if case .error(let message) = reply {
                    throw WireError("22023", "XADD to \(stream) failed: \(message)")
                }
                throw WireError("58000", "XADD to \(stream) returned no ID")
            }
            var copy = row
            copy["id"] = .streamID(parsed.0, parsed.1)
            written.append(copy)
        }
        return written
    }
}

/// Reads a stream in pages of XRANGE.
final class RedisStreamScan: ForeignScan {
    static let pageSize = 1_000
    static let empty = RedisStreamScan(stream: "", client: nil, start: "", end: "", maxRows: 0)

    private let stream: String
    private let client: RedisClient?
    private let end: String
    private let maxRows: Int
    private let state: Mutex<(start: String, done: Bool, read: Int)>

    init(stream: String, client: RedisClient?, start: String, end: String, maxRows: Int) {
        self.stream = stream
        self.client = client
        self.end = end
        self.maxRows = maxRows
        state = Mutex((start, client == nil, 0))
    }

    func next() async throws -> [[SQLValue]]? {
        let (start, done, read) = state.withLock { $0 }
        guard !done, let client else { return nil }
        guard read < maxRows else {
            throw WireError(
                "54000", "the scan of Redis stream \(stream) passed max_scan_rows (\(maxRows)) rows",
                hint: "add a condition on id, or raise wire.max_scan_rows")
        }
        let stream = stream
        let end = end
        let command = ["XRANGE", stream, start, end, "COUNT", String(Self.pageSize)]
        let reply: RedisValue
        do {
            reply = try await client.run { connection, _ in try connection.query(command) }
        } catch {
            // A connection the server closed while idle fails once; reads are safe to repeat
            // on a new one.
            reply = try await client.run { connection, _ in try connection.query(command) }
        }
        guard case .array(let page) = reply else {
            if case .error(let message) = reply { throw WireError("58000", "XRANGE \(stream) failed: \(message)") }
            return nil
        }
        let entries = RedisConnection.streamEntries(reply)
        var rows: [[SQLValue]] = []
        var last: String?
        for entry in entries {
            guard let parsed = RedisStreamTable.streamID(entry.id) else { continue }
            let fields = (entry.fields ?? []).map {
                ($0.name, JSONValue.string(String(decoding: $0.value, as: UTF8.self)))
            }
            rows.append([.streamID(parsed.0, parsed.1), .json(.object(fields))])
            last = entry.id
        }
        state.withLock { state in
            state.read += rows.count
            if let last, page.count == Self.pageSize {
                state.start = "(" + last
            } else {
                state.done = true
            }
        }
        return rows
    }

    func close() async {}
}
