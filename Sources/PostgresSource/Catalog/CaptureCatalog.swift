import BridgeCore
import Foundation
import PostgresClient

/// Catalog questions asked before capture starts (and by `pgbridge check`).
struct CaptureCatalog {
    let connection: PGConnection

    struct Table: Hashable, Sendable {
        let oid: UInt32
        let schema: String
        let name: String
        /// d, n, f, i
        let replicaIdentity: Character
        let hasPrimaryKey: Bool

        var qualified: String { "\(SQL.identifier(schema)).\(SQL.identifier(name))" }
        /// For messages: quoted only where SQL needs it, so a suggested fix reads naturally.
        var readableQualified: String { "\(SQL.readable(schema)).\(SQL.readable(name))" }
        var display: String { "\(schema).\(name)" }
    }

    struct SlotState {
        let name: String
        let plugin: String?
        let database: String?
        let active: Bool
        let activePID: Int?
        let confirmedFlush: LSN?
        let walStatus: String?
    }

    func walLevel() throws -> String {
        try connection.execute("SHOW wal_level").string(0, 0) ?? ""
    }

    func currentDatabase() throws -> String {
        try connection.execute("SELECT current_database()").string(0, 0) ?? ""
    }

    /// Expands patterns to tables; explicit names that do not exist are reported as problems.
    func resolve(_ patterns: [TablePattern], configPath: String) throws -> (tables: [Table], problems: [String]) {
        var tables: [Table] = []
        var seen: Set<UInt32> = []
        var problems: [String] = []
        let query = """
            SELECT c.oid, n.nspname, c.relname, c.relreplident::text,
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname = $1 AND ($2::text IS NULL OR c.relname = $2)
              AND NOT c.relispartition
              AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_timescaledb_internal', 'pgbridge')
            ORDER BY c.relname
            """
        let hasContinuousAggregates =
            try connection.execute("SELECT to_regclass('_timescaledb_catalog.continuous_agg') IS NOT NULL").string(0, 0)
            == "t"
        for pattern in patterns {
            var result = try connection.execute(query, [pattern.schema, pattern.table])
            if result.rowCount == 0, let table = pattern.table, hasContinuousAggregates {
                // A continuous aggregate's view: capture its materialisation hypertable.
                result = try connection.execute(
                    """
                    SELECT c.oid, n.nspname, c.relname, c.relreplident::text,
                           EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
                    FROM _timescaledb_catalog.continuous_agg ca
                    JOIN _timescaledb_catalog.hypertable h ON h.id = ca.mat_hypertable_id
                    JOIN pg_namespace n ON n.nspname = h.schema_name
                    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = h.table_name
                    WHERE ca.user_view_schema = $1 AND ca.user_view_name = $2
                    """, [pattern.schema, table])
            }
            if result.rowCount == 0 {
                if pattern.table != nil {
                    problems.append(
                        "table \(pattern) does not exist (\(configPath)): create it, or fix or remove it in the config")
                } else {
                    problems.append(
                        "no tables match \(pattern) (\(configPath)): create a table in schema \(pattern.schema) or fix the pattern"
                    )
                }
                continue
            }
            for row in 0..<result.rowCount {
                guard let oidText = result.string(row, 0), let oid = UInt32(oidText), seen.insert(oid).inserted else {
                    continue
                }
                tables.append(
                    Table(
                        oid: oid, schema: result.string(row, 1) ?? "", name: result.string(row, 2) ?? "",
                        replicaIdentity: result.string(row, 3)?.first ?? "d",
                        hasPrimaryKey: result.string(row, 4) == "t"))
            }
        }
        return (tables, problems)
    }

    /// Tables whose UPDATE/DELETE would fail once published, with the fix.
    static func replicaIdentityProblems(_ tables: [Table]) -> [String] {
        tables.compactMap { table in
            switch table.replicaIdentity {
            case "d" where !table.hasPrimaryKey:
                return
                    "table \(table.display) has no primary key and REPLICA IDENTITY DEFAULT: UPDATE and DELETE on it "
                    + "would fail once published. Run ALTER TABLE \(table.readableQualified) REPLICA IDENTITY FULL (or add a primary key)"
            case "n":
                return
                    "table \(table.display) has REPLICA IDENTITY NOTHING: UPDATE and DELETE on it would fail once published. "
                    + "Run ALTER TABLE \(table.readableQualified) REPLICA IDENTITY FULL (or DEFAULT with a primary key)"
            default:
                return nil
            }
        }
    }

    /// nil when the publication does not exist; otherwise the OIDs it publishes (all tables: nil set).
    func publication(_ name: String) throws -> (exists: Bool, allTables: Bool, tables: Set<UInt32>) {
        let result = try connection.execute("SELECT puballtables FROM pg_publication WHERE pubname = $1", [name])
        guard result.rowCount == 1 else { return (false, false, []) }
        if result.string(0, 0) == "t" { return (true, true, []) }
        let tables = try connection.execute(
            "SELECT (quote_ident(schemaname) || '.' || quote_ident(tablename))::regclass::oid FROM pg_publication_tables WHERE pubname = $1",
            [name])
        return (true, false, Set((0..<tables.rowCount).compactMap { tables.string($0, 0).flatMap { UInt32($0) } }))
    }

    func slot(_ name: String) throws -> SlotState? {
        let result = try connection.execute(
            """
            SELECT slot_name, plugin, database, active, active_pid, confirmed_flush_lsn::text, wal_status
            FROM pg_replication_slots WHERE slot_name = $1
            """, [name])
        guard result.rowCount == 1 else { return nil }
        return SlotState(
            name: name, plugin: result.string(0, 1), database: result.string(0, 2), active: result.string(0, 3) == "t",
            activePID: result.string(0, 4).flatMap { Int($0) }, confirmedFlush: result.string(0, 5).flatMap { LSN($0) },
            walStatus: result.string(0, 6))
    }

    /// Problems with an existing slot (wrong plugin or database, WAL lost).
    static func slotProblems(_ slot: SlotState, database: String) -> [String] {
        var problems: [String] = []
        if slot.plugin != "pgoutput" {
            problems.append(
                "replication slot \(slot.name) uses plugin \(slot.plugin ?? "none (physical slot)"), not pgoutput: "
                    + "choose another slot name, or drop it with `pgbridge slots drop \(slot.name)`")
        } else if let slotDatabase = slot.database, slotDatabase != database {
            problems.append(
                "replication slot \(slot.name) belongs to database \(slotDatabase), not \(database): choose another slot name"
            )
        }
        if slot.walStatus == "lost" {
            problems.append(SlotAdvice.lost(slot.name))
        }
        return problems
    }

    func relationExists(oid: UInt32) throws -> Bool {
        try connection.execute("SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = $1::oid)", [String(oid)]).string(0, 0)
            == "t"
    }

    /// PostgreSQL's primary-key columns of a table, in key order.
    func primaryKey(oid: UInt32) throws -> [String] {
        let result = try connection.execute(
            """
            SELECT a.attname FROM pg_index i
            JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord
            """, [String(oid)])
        return (0..<result.rowCount).compactMap { result.string($0, 0) }
    }
}

enum SlotAdvice {
    static func lost(_ slot: String) -> String {
        "replication slot \(slot) was invalidated (wal_status = lost): PostgreSQL removed WAL it still needed, "
            + "so changes were lost for this slot. Recover with `pgbridge slots drop \(slot)`, then restart pgbridge "
            + "(it creates a new slot; re-sync consumers from the table contents), and raise max_slot_wal_keep_size"
    }

    static func missing(_ slot: String, confirmed: LSN, timeline: String, checkpoint: String) -> String {
        "replication slot \(slot) is gone although this pipe read from it (it confirmed up to \(confirmed)"
            + (timeline.isEmpty ? "" : " on timeline \(timeline)")
            + "): after a failover to a server without the slot, or after someone dropped it, the changes made since "
            + "cannot be read any more. To re-read the captured tables into the sinks, set on_slot_lost: resnapshot on "
            + "the pipe; to accept the gap and continue from now, delete \(checkpoint) and restart pgbridge"
    }

    static func busy(_ slot: String, pid: Int?) -> String {
        "replication slot \(slot) is in use by another process\(pid.map { " (PID \($0))" } ?? ""): "
            + "stop the other pgbridge or consumer using it, or give this pipe another slot name"
    }
}
