import BridgeCore
import BridgeRuntime
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Pipeline
import PostgresClient
import ServiceLifecycle

/// Live queries: `GET /{table}?filters` with `Accept: text/event-stream` answers the query's
/// rows (`event: snapshot`, arrays of up to 1,000 rows), then every later change of a row the
/// query covers (`event: insert|update|delete`), with no gap and no duplicate between the two.
///
/// - The snapshot is read in one REPEATABLE READ transaction that also reads
///   `pg_current_snapshot()`; changes come from the buffer of the pipe that captures the table,
///   from the buffer position noted before the snapshot. A change whose transaction the
///   snapshot already saw is skipped (its xid is below `xmin`, or below `xmax` and not in flight).
/// - Each batch of changes is re-checked by key against the database as the requesting role:
///   a row that exists, matches the filters and passes row-level security is sent as it is now
///   (`insert` when the client does not have it, `update` when it does); a row the client had
///   that no longer qualifies is sent as `delete`. So a role never sees another role's rows,
///   and what the client holds converges to the query's result.
/// - Every change event carries the pipe buffer's id: a client reconnecting with
///   `Last-Event-ID` resumes there (without a snapshot); it then also gets deletes of rows it
///   may not have had, since pgbridge no longer knows which it had.
extension APIServer {
    static let liveBatch = 1000
    static let liveSnapshotLimit = 100_000

    func liveQuery(_ request: Request, _ context: BasicRequestContext, tables: TableRoutes) async throws -> Response {
        let identity = try await tables.auth.identify(authorization: request.headers[.authorization], write: false)
        let table = try await tables.table(request, context, write: false)
        let query = try RestQuery(pairs: RestQuery.pairs(request.uri.query), table: table)
        guard query.select.allSatisfy({ $0 == .star }), query.scopes.isEmpty, query.bucket == nil else {
            throw RestError.parse(
                "a live query takes filters (and order and limit for its snapshot): it streams whole rows, so select=* only"
            )
        }
        guard !table.primaryKey.isEmpty else {
            throw RestError.parse(
                "a live query follows rows by their primary key: \(table.display) has none",
                hint: "add a primary key, or read the table without Accept: text/event-stream")
        }
        let (pipe, buffer) = try await livePipe(for: table)
        let settings = tables.settings(identity, request)
        let resume = request.headers[Self.lastEventID]
        let start: UInt64
        var snapshotRows: [(key: String, row: String)] = []
        var visibility: SnapshotVisibility?
        if let resume, !resume.isEmpty {
            start = try self.position(in: buffer, after: resume, default: buffer.endPosition)
        } else {
            start = buffer.endPosition
            (snapshotRows, visibility) = try await liveSnapshot(
                query, table: table, settings: settings, identity: identity)
        }
        let keysKnown = visibility != nil
        let snapshot = snapshotRows
        let seen = visibility
        let filter = PipeEventBuffer.Filter(table: table.display, op: nil)
        let changes = buffer.changes()
        let pool = pool
        let logger = logger
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var keys = Set(snapshot.map(\.key))
                try await writer.write(
                    ByteBuffer(string: ": pgbridge live query on \(table.display) (pipe \(pipe))\n\n"))
                if keysKnown {
                    var start = 0
                    repeat {
                        let chunk = snapshot[start..<min(start + Self.liveBatch, snapshot.count)]
                        var text = "event: snapshot\ndata: ["
                        text += chunk.map(\.row).joined(separator: ",")
                        text += "]\n\n"
                        try await writer.write(ByteBuffer(string: text))
                        start += Self.liveBatch
                    } while start < snapshot.count
                }
                try await Self.follow(buffer, from: start, filter: filter, changes: changes, writer: &writer) {
                    events in
                    let text = try await Self.liveChanges(
                        events, table: table, query: query, visibility: seen, keys: &keys, keysKnown: keysKnown,
                        settings: settings, pool: pool)
                    return ByteBuffer(string: text)
                }
                logger.debug("live query on \(table.display) ended")
                try await writer.finish(nil)
            })
    }

    /// The pipe whose buffer carries the table's changes: `api.live_pipe`, or the one pipe that
    /// captures the table by replication.
    func livePipe(for table: TableInfo) async throws -> (String, PipeEventBuffer) {
        let statuses = await supervisor.statuses()
        let candidates = statuses.filter { status in
            if let named = config.livePipe { return status.config.name == named }
            guard case .replication(let source) = status.config.source else { return false }
            return source.tables.contains { $0.schema == table.schema && ($0.table == nil || $0.table == table.name) }
        }
        guard let status = candidates.first, let buffer = await supervisor.buffer(status.config.name) else {
            throw RestError(
                status: .conflict, code: "PGRST409",
                message:
                    "no pipe with an event buffer captures \(table.display): a live query streams that pipe's changes",
                hint:
                    "add the table to a replication pipe's source.tables and keep api.buffer_events above 0, or name the pipe with api.live_pipe"
            )
        }
        guard status.config.format == .native else {
            throw RestError(
                status: .conflict, code: "PGRST409",
                message:
                    "pipe \(status.config.name) formats its events as \(status.config.format.rawValue): live queries read native events",
                hint: "name a pipe with format: native in api.live_pipe")
        }
        return (status.config.name, buffer)
    }

    /// Which transactions a snapshot saw (`pg_current_snapshot()`: `xmin:xmax:xip,…`).
    struct SnapshotVisibility: Sendable {
        var xmin: UInt64
        var xmax: UInt64
        var inProgress: Set<UInt64>

        init?(_ text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, let xmin = UInt64(parts[0]), let xmax = UInt64(parts[1]) else { return nil }
            self.xmin = xmin
            self.xmax = xmax
            inProgress = Set(parts[2].split(separator: ",").compactMap { UInt64($0) })
        }

        /// Whether the snapshot saw the transaction with this 32-bit xid (events carry 32 bits;
        /// the epoch is the snapshot's, or the one before when the xid is above `xmax`'s low bits
        /// by more than half the space).
        func saw(xid: UInt32) -> Bool {
            let epoch = xmax >> 32
            var full = (epoch << 32) | UInt64(xid)
            if full > xmax, epoch > 0, full - xmax > (1 << 31) { full -= 1 << 32 }
            if full < xmin { return true }
            return full < xmax && !inProgress.contains(full)
        }
    }

    /// The query's rows now (keyed by primary key) and what the snapshot saw.
    func liveSnapshot(
        _ query: RestQuery, table: TableInfo, settings: TableRoutes.SessionSettings, identity: ProxyIdentity
    ) async throws -> ([(key: String, row: String)], SnapshotVisibility) {
        var parameters: [String?] = []
        var sql =
            "SELECT \(Self.keySQL(table, alias: "t")), row_to_json(t)::text FROM \(table.qualified) AS t"
            + RestQuery.whereClause(query.root, &parameters, qualifier: "t", table: table)
        if !query.root.order.isEmpty {
            var orders: [String] = []
            for order in query.root.order { orders.append(order.sql(&parameters, qualifier: "t")) }
            sql += " ORDER BY " + orders.joined(separator: ", ")
        }
        sql += " LIMIT \(min(query.root.limit ?? Self.liveSnapshotLimit, Self.liveSnapshotLimit))"
        if let offset = query.root.offset, offset > 0 { sql += " OFFSET \(offset)" }
        let statement = sql
        let bound = parameters
        do {
            let result = try await pool.withSession(timeout: .seconds(10)) { session in
                try await session.run { connection in
                    try TableRoutes.begin(connection, settings, relations: [table], readOnly: true)
                    let rows = try connection.execute(statement, bound)
                    let snapshot = try connection.execute("SELECT pg_current_snapshot()::text").string(0, 0) ?? ""
                    try connection.execute("COMMIT")
                    return (
                        (0..<rows.rowCount).map { (rows.string($0, 0) ?? "", rows.string($0, 1) ?? "null") }, snapshot
                    )
                }
            }
            guard let result, let visibility = SnapshotVisibility(result.1) else {
                throw RestError.busy
            }
            return (result.0, visibility)
        } catch let error as RestError {
            throw error
        } catch {
            throw RestError.database(
                sqlState: (error as? PostgresError)?.sqlState ?? "PGRST000",
                message: (error as? PostgresError)?.primaryMessage ?? "the database is not reachable: try again",
                anonymous: identity.anonymous)
        }
    }

    /// The primary key as one text value: `concat_ws(chr(1), t.a::text, …)`.
    static func keySQL(_ table: TableInfo, alias: String) -> String {
        "concat_ws(chr(1), " + table.primaryKey.map { "\(alias).\(SQL.identifier($0))::text" }.joined(separator: ", ")
            + ")"
    }

    /// One batch of buffered events as SSE text: each key re-checked as the role in one query.
    static func liveChanges(
        _ events: [PipeEventBuffer.Event], table: TableInfo, query: RestQuery, visibility: SnapshotVisibility?,
        keys: inout Set<String>, keysKnown: Bool, settings: TableRoutes.SessionSettings, pool: SQLPool
    ) async throws -> String {
        // The events to act on: op and key object, in order.
        var pending: [(id: String, op: String, key: String)] = []
        for event in events {
            guard let object = try? JSONSerialization.jsonObject(with: Data(event.body)) as? [String: Any],
                let op = object["op"] as? String
            else { continue }
            if let visibility, let source = object["source"] as? [String: Any], let xid = source["xid"] as? Int,
                visibility.saw(xid: UInt32(truncatingIfNeeded: xid))
            {
                continue  // already in the snapshot
            }
            if op == "truncate" {
                pending.append((event.id, op, "null"))
                continue
            }
            guard ["insert", "update", "delete", "read"].contains(op),
                let key = object["key"] ?? object["after"] ?? object["before"],
                let data = try? JSONSerialization.data(withJSONObject: key)
            else { continue }
            pending.append((event.id, op, String(decoding: data, as: UTF8.self)))
        }
        guard !pending.isEmpty else { return "" }
        // One query: each key's canonical text and, when the role may see it and the filters
        // match, the row as it is now.
        var parameters: [String?] = ["[" + pending.map(\.key).joined(separator: ",") + "]"]
        let conditions = RestQuery.whereClause(query.root, &parameters, qualifier: "t", table: table)
        let match = table.primaryKey.map { "t.\(SQL.identifier($0)) = k.\(SQL.identifier($0))" }.joined(
            separator: " AND ")
        let sql = """
            SELECT e.n, \(keySQL(table, alias: "k")),
              (SELECT row_to_json(t)::text FROM \(table.qualified) AS t\(conditions.isEmpty ? " WHERE " : conditions + " AND ")\(match))
            FROM json_array_elements($1::json) WITH ORDINALITY AS e(j, n)
            CROSS JOIN LATERAL json_populate_record(NULL::\(table.qualified), e.j) AS k
            ORDER BY e.n
            """
        let bound = parameters
        let checked = try await pool.withSession(timeout: .seconds(10)) { session in
            try await session.run { connection -> [(String, String?)] in
                try TableRoutes.begin(connection, settings, relations: [table], readOnly: true)
                let result = try connection.execute(sql, bound)
                try connection.execute("COMMIT")
                return (0..<result.rowCount).map { (result.string($0, 1) ?? "", result.string($0, 2)) }
            }
        }
        guard let checked, checked.count == pending.count else {
            throw RestError(
                status: .serviceUnavailable, code: "PGRST003",
                message: "the live query could not re-check its rows (api.pool_size): reconnect with Last-Event-ID")
        }
        // The last state of each key in the batch decides.
        var lastIndex: [String: Int] = [:]
        for (index, (key, _)) in checked.enumerated() where pending[index].op != "truncate" { lastIndex[key] = index }
        var text = ""
        for (index, change) in pending.enumerated() {
            if change.op == "truncate" {
                if keysKnown { keys.removeAll() }
                text += "id: \(change.id)\nevent: truncate\ndata: {}\n\n"
                continue
            }
            let (key, row) = checked[index]
            guard lastIndex[key] == index else { continue }
            if let row {
                let event = keys.contains(key) ? "update" : "insert"
                keys.insert(key)
                text += "id: \(change.id)\nevent: \(event)\ndata: \(row)\n\n"
            } else if keys.contains(key) || (!keysKnown && change.op == "delete") {
                keys.remove(key)
                text += "id: \(change.id)\nevent: delete\ndata: \(change.key)\n\n"
            }
        }
        return text
    }
}
