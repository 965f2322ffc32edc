import BridgeCore
import BridgeRuntime
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Pipeline
import PostgresClient
import Synchronization

/// Live queries: `GET /{table}?filters` with `Accept: text/event-stream` answers the query's
/// rows (`event: snapshot`, arrays of up to 1,000 rows), then every later change of a row the
/// query covers (`event: insert|update|delete`), with no gap and no duplicate between the two.
///
/// - The snapshot is read in one REPEATABLE READ transaction that also reads
///   `pg_current_snapshot()`; changes come from the buffer of the pipe that captures the table,
///   from the buffer position noted before the snapshot. A change whose transaction the
///   snapshot already saw is skipped, until the first one it did not see (the pipe delivers in
///   commit order; a change sent twice only repeats an `update`).
/// - Each batch of changes is re-checked by primary key against the database as the requesting
///   role: a row that exists, matches the filters and passes row-level security is sent as it
///   is now (`insert` when the client does not have it, `update` when it does); a row the
///   client had that no longer qualifies is sent as `delete`. So a role never sees another
///   role's rows, and what the client holds converges to the query's result.
/// - A client reconnecting with `Last-Event-ID` gets `event: reset` and a fresh snapshot: it
///   is never sent keys of rows it was not given.
extension APIServer {
    static let liveBatch = 1000
    static let liveSnapshotLimit = 100_000
    /// Keys one stream follows at most (rows the client holds).
    static let liveKeyLimit = 1_000_000
    /// Live streams open at once, in the whole process.
    static let liveStreamLimit = 256
    /// How long a re-check waits for a decoded change's transaction to become visible.
    static let liveVisibilityWait: Duration = .seconds(5)
    static let liveStreams = Mutex(0)

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
        guard
            Self.liveStreams.withLock({ count in
                guard count < Self.liveStreamLimit else { return false }
                count += 1
                return true
            })
        else {
            throw RestError(
                status: .serviceUnavailable, code: "PGRST003",
                message: "\(Self.liveStreamLimit) live queries are open: try again later")
        }
        var handedOver = false
        defer { if !handedOver { Self.liveStreams.withLock { $0 -= 1 } } }
        let settings = tables.settings(identity, request)
        let resumed = !(request.headers[Self.lastEventID] ?? "").isEmpty
        let start = buffer.endPosition  // before the snapshot: nothing committed after it is missed
        let (snapshot, visibility) = try await liveSnapshot(
            query, table: table, settings: settings, anonymous: identity.anonymous)
        let filter = PipeEventBuffer.Filter(table: table.display, op: nil)
        let changes = buffer.changes()
        let pool = pool
        let logger = logger
        let box = SnapshotBox(snapshot)
        handedOver = true
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                defer { Self.liveStreams.withLock { $0 -= 1 } }
                var follower = LiveFollower(
                    table: table, query: query, visibility: visibility, keys: box.keys, settings: settings, pool: pool)
                try await writer.write(
                    ByteBuffer(string: ": pgbridge live query on \(table.display) (pipe \(pipe))\n\n"))
                if resumed { try await writer.write(ByteBuffer(string: "event: reset\ndata: {}\n\n")) }
                for chunk in box.take() { try await writer.write(ByteBuffer(string: chunk)) }
                do {
                    try await Self.follow(buffer, from: start, filter: filter, changes: changes, writer: &writer) {
                        events in ByteBuffer(string: try await follower.changes(events))
                    }
                } catch let ended as LiveStreamEnded {
                    logger.warning(
                        "a live query on \(table.display) ended; the client is told to reconnect for a fresh snapshot",
                        metadata: [
                            "reason": "\(ended.text.split(separator: "\n").last { $0.hasPrefix("data:") } ?? "")"
                        ])
                    try await writer.write(ByteBuffer(string: ended.text))
                }
                try await writer.finish(nil)
            })
    }

    /// The snapshot's SSE text, given up once sent (a long stream does not keep it).
    final class SnapshotBox: Sendable {
        let keys: Set<String>
        private let chunks: Mutex<[String]>

        init(_ rows: [(key: String, row: String)]) {
            keys = Set(rows.map(\.key))
            var chunks: [String] = []
            var start = 0
            repeat {
                let slice = rows[start..<min(start + APIServer.liveBatch, rows.count)]
                chunks.append("event: snapshot\ndata: [" + slice.map(\.row).joined(separator: ",") + "]\n\n")
                start += APIServer.liveBatch
            } while start < rows.count
            self.chunks = Mutex(chunks)
        }

        func take() -> [String] {
            chunks.withLock { chunks in
                defer { chunks = [] }; return chunks
            }
        }
    }

    /// The pipe whose buffer carries the table's changes: `api.live_pipe`, or the one pipe that
    /// captures the table by replication. Its events must be the table's own: native format, no
    /// processors (a filter would hide changes, a mask would change keys).
    func livePipe(for table: TableInfo) async throws -> (String, PipeEventBuffer) {
        let statuses = await supervisor.statuses()
        let capturing = statuses.filter { status in
            guard case .replication(let source) = status.config.source else { return false }
            return source.tables.contains { $0.schema == table.schema && ($0.table == nil || $0.table == table.name) }
        }
        let candidates = config.livePipe.map { named in capturing.filter { $0.config.name == named } } ?? capturing
        guard let status = candidates.first, let buffer = await supervisor.buffer(status.config.name) else {
            throw RestError(
                status: .conflict, code: "PGRST409",
                message:
                    "no pipe with an event buffer captures \(table.display) by replication: a live query streams that pipe's changes",
                hint:
                    "add the table to a replication pipe's source.tables and keep api.buffer_events above 0 (api.live_pipe names which pipe)"
            )
        }
        guard status.config.format == .native, status.config.processors.isEmpty else {
            throw RestError(
                status: .conflict, code: "PGRST409",
                message:
                    "pipe \(status.config.name) changes its events (format \(status.config.format.rawValue), \(status.config.processors.count) processors): live queries read the table's own changes",
                hint: "name a pipe with format: native and no processors in api.live_pipe")
        }
        return (status.config.name, buffer)
    }

    /// The query's rows now (keyed by primary key) and what the snapshot saw. The table's
    /// replica identity must carry the primary key (DEFAULT or FULL).
    func liveSnapshot(
        _ query: RestQuery, table: TableInfo, settings: TableRoutes.SessionSettings, anonymous: Bool
    ) async throws -> ([(key: String, row: String)], SnapshotVisibility) {
        var parameters: [String?] = []
        var sql =
            "SELECT \(LiveFollower.keySQL(table, alias: "t")), row_to_json(t)::text FROM \(table.qualified) AS t"
            + RestQuery.whereClause(query.root, &parameters, qualifier: "t", table: table)
        if !query.root.order.isEmpty {
            var orders: [String] = []
            for order in query.root.order { orders.append(order.sql(&parameters, qualifier: "t")) }
            sql += " ORDER BY " + orders.joined(separator: ", ")
        }
        let limit = query.root.limit.map { min($0, Self.liveSnapshotLimit) } ?? Self.liveSnapshotLimit + 1
        sql += " LIMIT \(limit)"
        if let offset = query.root.offset, offset > 0 { sql += " OFFSET \(offset)" }
        let statement = sql
        let bound = parameters
        let result: (rows: [(String, String)], snapshot: String, identity: String)?
        do {
            result = try await pool.withSession(timeout: .seconds(10)) { session in
                try await session.run { connection in
                    let results = try TableRoutes.transaction(
                        connection, settings, relations: [table], readOnly: true,
                        [
                            SQLStatement(
                                text: """
                                    SELECT c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                    WHERE n.nspname = $1 AND c.relname = $2
                                    """, parameters: [table.schema, table.name]),
                            SQLStatement(text: statement, parameters: bound),
                            SQLStatement(text: "SELECT pg_current_snapshot()::text", parameters: []),
                        ], finish: .commit)
                    let identity = results[0].string(0, 0) ?? ""
                    let rows = results[1]
                    let snapshot = results[2].string(0, 0) ?? ""
                    return (
                        (0..<rows.rowCount).map { (rows.string($0, 0) ?? "", rows.string($0, 1) ?? "null") }, snapshot,
                        identity
                    )
                }
            }
        } catch let error as APIError {
            throw RestError(error)
        } catch let error as PostgresError {
            throw RestError.database(
                sqlState: error.sqlState ?? "PGRST000", message: error.primaryMessage ?? error.message,
                anonymous: anonymous)
        }
        guard let result, let visibility = SnapshotVisibility(result.snapshot) else { throw RestError.busy }
        guard ["d", "f"].contains(result.identity) else {
            throw RestError(
                status: .conflict, code: "PGRST409",
                message:
                    "\(table.display)'s replica identity does not carry its primary key: live queries follow rows by it",
                hint: "ALTER TABLE \(table.display) REPLICA IDENTITY DEFAULT (or FULL)")
        }
        guard result.rows.count <= Self.liveSnapshotLimit else {
            throw RestError(
                status: .badRequest, code: "PGRST100",
                message:
                    "the live query's snapshot would hold more than \(Self.liveSnapshotLimit) rows: add filters or a limit"
            )
        }
        return (result.rows, visibility)
    }
}
