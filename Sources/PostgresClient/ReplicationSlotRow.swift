/// One row of `pg_replication_slots`, as `pgbridge slots`, `/readyz` and `/metrics` show it.
public struct ReplicationSlotRow: Sendable {
    public let name: String
    public let plugin: String
    public let database: String
    public let active: Bool
    public let activePID: Int?
    public let confirmedFlush: String
    public let lagBytes: Int64?
    public let walStatus: String
    public let safeWalSize: Int64?

    /// Every slot of the server, by name.
    public static func all(on connection: PGConnection) throws -> [ReplicationSlotRow] {
        let result = try connection.execute(
            """
            SELECT slot_name, coalesce(plugin, ''), coalesce(database, ''), active, active_pid,
                   coalesce(confirmed_flush_lsn::text, restart_lsn::text, ''),
                   CASE WHEN pg_is_in_recovery() THEN NULL
                        ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn))::bigint END,
                   coalesce(wal_status, ''), safe_wal_size
            FROM pg_replication_slots ORDER BY slot_name
            """)
        return (0..<result.rowCount).map { row in
            ReplicationSlotRow(
                name: result.string(row, 0) ?? "", plugin: result.string(row, 1) ?? "",
                database: result.string(row, 2) ?? "", active: result.string(row, 3) == "t",
                activePID: result.string(row, 4).flatMap { Int($0) }, confirmedFlush: result.string(row, 5) ?? "",
                lagBytes: result.string(row, 6).flatMap { Int64($0) }, walStatus: result.string(row, 7) ?? "",
                safeWalSize: result.string(row, 8).flatMap { Int64($0) })
        }
    }
}
