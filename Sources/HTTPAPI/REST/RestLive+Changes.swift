import Foundation
import Pipeline
import PostgresClient

/// Which transactions a snapshot saw (`pg_current_snapshot()`: `xmin:xmax:xip,…`).
struct SnapshotVisibility: Sendable, Equatable {
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

    /// The 64-bit xid nearest to `xmax` with these low 32 bits (events carry 32 bits).
    func fullXid(_ xid: UInt32) -> UInt64 {
        let delta = Int64(Int32(bitPattern: xid &- UInt32(truncatingIfNeeded: xmax)))
        return UInt64(max(0, Int64(bitPattern: xmax) + delta))
    }

    /// Whether the snapshot saw the transaction with this xid.
    func saw(xid: UInt32) -> Bool {
        let full = fullXid(xid)
        if full < xmin { return true }
        return full < xmax && !inProgress.contains(full)
    }
}

/// One live query's state while it follows the pipe's buffer: what the snapshot saw, the keys
/// the client holds, and the re-check of each batch as the requesting role.
struct LiveFollower: Sendable {
    let table: TableInfo
    let query: RestQuery
    /// Cleared at the first change the snapshot did not see: later ones are all new.
    var visibility: SnapshotVisibility?
    var keys: Set<String>
    let settings: TableRoutes.SessionSettings
    let pool: SQLPool

    init(
        table: TableInfo, query: RestQuery, visibility: SnapshotVisibility, keys: Set<String>,
        settings: TableRoutes.SessionSettings, pool: SQLPool
    ) {
        self.table = table
        self.query = query
        self.visibility = visibility
        self.keys = keys
        self.settings = settings
        self.pool = pool
    }

    /// The primary key as canonical text, also what a `delete` event carries:
    /// `json_build_object('a', t.a, …)::text` (column names from the catalog).
    static func keySQL(_ table: TableInfo, alias: String) -> String {
        "json_build_object("
            + table.primaryKey.map { "\(SQL.literal($0)), \(alias).\(SQL.identifier($0))" }.joined(separator: ", ")
            + ")::text"
    }

    /// A key to re-check: an event's row (its primary-key columns are read from it).
    struct Pending {
        var id: String
        var row: String
        /// The change's transaction (low 32 bits), when the event names it.
        var xid: UInt32?
    }

    /// One page of buffered events as SSE text.
    mutating func changes(_ events: [PipeEventBuffer.Event]) async throws -> String {
        var text = ""
        var pending: [Pending] = []
        for event in events {
            guard let object = try? JSONSerialization.jsonObject(with: Data(event.body)) as? [String: Any],
                let op = object["op"] as? String
            else { continue }
            let xid = ((object["source"] as? [String: Any])?["xid"] as? Int).flatMap {
                $0 > 0 ? UInt32(truncatingIfNeeded: $0) : nil
            }
            if let seen = visibility, let xid {
                if seen.saw(xid: xid) { continue }  // already in the snapshot
                visibility = nil
            }
            switch op {
            case "truncate":
                text += try await recheck(pending)
                pending = []
                keys.removeAll()
                text += "id: \(event.id)\nevent: truncate\ndata: {}\n\n"
            case "chunk_dropped":
                // Retention removed rows no event names one by one: the client starts again.
                text += try await recheck(pending)
                text +=
                    "id: \(event.id)\nevent: gone\ndata: {\"message\":\"a chunk of \(table.display) was dropped: reconnect for a fresh snapshot\"}\n\n"
                throw LiveStreamEnded(text: text)
            case "insert", "update", "read", "delete":
                // The row as inserted or updated; for a delete the old row (its key at least).
                // An update that changed the key also re-checks the old key.
                for field in op == "delete" ? ["before", "key"] : ["after", "before"] {
                    guard let row = object[field] as? [String: Any],
                        let data = try? JSONSerialization.data(withJSONObject: row)
                    else { continue }
                    pending.append(Pending(id: event.id, row: String(decoding: data, as: UTF8.self), xid: xid))
                    if op == "delete" { break }
                }
            default:
                continue
            }
        }
        text += try await recheck(pending)
        guard keys.count <= APIServer.liveKeyLimit else {
            throw LiveStreamEnded(
                text: text
                    + "event: gone\ndata: {\"message\":\"the live query holds more than \(APIServer.liveKeyLimit) rows: add filters\"}\n\n"
            )
        }
        return text
    }

    /// Re-checks keys as the role in one query: each key's canonical text and, when the row
    /// exists, matches the filters and passes row-level security, the row as it is now.
    mutating func recheck(_ pending: [Pending]) async throws -> String {
        guard !pending.isEmpty else { return "" }
        var parameters: [String?] = ["[" + pending.map(\.row).joined(separator: ",") + "]"]
        let conditions = RestQuery.whereClause(query.root, &parameters, qualifier: "t", table: table)
        let match = table.primaryKey.map { "t.\(SQL.identifier($0)) = k.\(SQL.identifier($0))" }
            .joined(separator: " AND ")
        // json_to_record reads only the key columns (with their types): other columns' domains
        // never see the NULLs a partial row would give them.
        let columns = table.primaryKey.map { key in
            "\(SQL.identifier(key)) \(self.table.column(key)?.type ?? "text")"
        }.joined(separator: ", ")
        let sql = """
            SELECT e.n, \(Self.keySQL(table, alias: "k")),
              (SELECT row_to_json(t)::text FROM \(table.qualified) AS t\(conditions.isEmpty ? " WHERE " : conditions + " AND ")\(match))
            FROM json_array_elements($1::json) WITH ORDINALITY AS e(j, n)
            CROSS JOIN LATERAL json_to_record(e.j) AS k(\(columns))
            ORDER BY e.n
            """
        let statements = [
            SQLStatement(text: sql, parameters: parameters),
            SQLStatement(text: "SELECT pg_current_snapshot()::text", parameters: []),
        ]
        let settings = settings
        let relation = table
        let xids = pending.compactMap(\.xid)
        // A change is decoded as soon as its commit record is flushed, a moment before its
        // transaction becomes visible to new snapshots: the re-check is repeated (for up to
        // `liveVisibilityWait`) until its snapshot sees every transaction of the batch.
        var checked: [(String, String?)]?
        let deadline = ContinuousClock.now + APIServer.liveVisibilityWait
        var pause: Duration = .milliseconds(2)
        while true {
            let attempt = try await pool.withSession(timeout: .seconds(10)) { session in
                try await session.run { connection -> (rows: [(String, String?)], sawAll: Bool) in
                    let results = try TableRoutes.transaction(
                        connection, settings, relations: [relation], readOnly: true, statements, finish: .commit)
                    let rows = (0..<results[0].rowCount).map {
                        (results[0].string($0, 1) ?? "", results[0].string($0, 2))
                    }
                    let snapshot = results[1].string(0, 0).flatMap(SnapshotVisibility.init)
                    return (rows, snapshot.map { seen in xids.allSatisfy { seen.saw(xid: $0) } } ?? true)
                }
            }
            guard let attempt else { break }
            if attempt.sawAll {
                checked = attempt.rows
                break
            }
            guard ContinuousClock.now < deadline else {
                throw LiveStreamEnded(
                    text:
                        "event: gone\ndata: {\"message\":\"the live query could not see committed changes within \(APIServer.liveVisibilityWait): reconnect\"}\n\n"
                )
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(200))
        }
        guard let checked, checked.count == pending.count else {
            throw LiveStreamEnded(
                text:
                    "event: gone\ndata: {\"message\":\"the live query could not re-check its rows (api.pool_size busy): reconnect\"}\n\n"
            )
        }
        // The last state of each key in the batch decides.
        var lastIndex: [String: Int] = [:]
        for (index, (key, _)) in checked.enumerated() { lastIndex[key] = index }
        var text = ""
        for (index, (key, row)) in checked.enumerated() where lastIndex[key] == index {
            let id = pending[index].id
            if let row {
                let event = keys.contains(key) ? "update" : "insert"
                keys.insert(key)
                text += "id: \(id)\nevent: \(event)\ndata: \(row)\n\n"
            } else if keys.remove(key) != nil {
                text += "id: \(id)\nevent: delete\ndata: \(key)\n\n"
            }
        }
        return text
    }
}

/// The stream ends after `text` (the client reconnects for a fresh snapshot).
struct LiveStreamEnded: Error {
    var text: String
}
