import BridgeCore
import PostgresClient

/// What an initial snapshot reads: one unit per plain table, and per chunk (in time order)
/// for hypertables, each reported under the name streaming uses.
struct SnapshotUnit {
    /// Display name of the physical table read (`schema.table` or the chunk).
    let name: String
    /// Quoted name for SQL.
    let physical: String
    let relation: RelationInfo
    /// Quoted column names in attribute order, as pgoutput sends them.
    let columnList: String
    /// Indexes of the primary-key columns (ordering and key-range resume); empty = no resume.
    let keyColumns: [Int]
    let keyTypes: [String]
    /// Extra WHERE condition (snapshot_range), already quoted.
    let filter: String?
    let estimatedRows: Int
    /// `FROM ONLY`: plain tables with inheritance children. Not for chunks (TimescaleDB does not
    /// decompress compressed chunks under ONLY) nor partitioned tables (ONLY reads nothing).
    let useOnly: Bool
}

extension CaptureCatalog {
    func snapshotPlan(
        tables: [Table], hypertables: Set<UInt32>, range: SnapshotRange?, state: TimescaleState,
        continuousAggregates: ContinuousAggregateMode
    ) throws -> [SnapshotUnit] {
        var units: [SnapshotUnit] = []
        let hypertableIDs = try hypertableIDsByName()
        for table in tables {
            if hypertables.contains(table.oid) {
                var filter: String?
                if let range {
                    let column = try range.column ?? timeDimension(of: table)
                    guard let column else {
                        throw PostgresError(
                            .prerequisite,
                            "snapshot_range needs the time column of hypertable \(table.display): set snapshot_range.column"
                        )
                    }
                    var terms: [String] = []
                    if let start = range.start { terms.append("\(SQL.identifier(column)) >= \(SQL.literal(start))") }
                    if let end = range.end { terms.append("\(SQL.identifier(column)) < \(SQL.literal(end))") }
                    filter = terms.joined(separator: " AND ")
                }
                for chunk in try chunksInTimeOrder(of: table, state: state) {
                    let metadata = try metadata(
                        oid: chunk.oid, schema: chunk.schema, name: chunk.name,
                        continuousAggregates: continuousAggregates, state: state, hypertables: hypertableIDs)
                    if metadata.isSuppressed { continue }
                    units.append(try unit(for: chunk, metadata: metadata, filter: filter, isChunk: true))
                }
            } else {
                let key = try primaryKey(oid: table.oid)
                units.append(
                    try unit(
                        for: table, metadata: .init(primaryKey: key.isEmpty ? nil : key), filter: nil, isChunk: false))
            }
        }
        return units
    }

    private func unit(for table: Table, metadata: PgOutputDecoder.RelationMetadata, filter: String?, isChunk: Bool)
        throws
        -> SnapshotUnit
    {
        let result = try connection.execute(
            """
            SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod), c.reltuples::bigint, c.relkind::text,
                   c.relreplident::text,
                   CASE c.relreplident
                     WHEN 'f' THEN true
                     WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisreplident
                                           AND a.attnum = ANY (x.indkey))
                     WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary
                                           AND a.attnum = ANY (x.indkey))
                     ELSE false END
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            ORDER BY a.attnum
            """, [String(table.oid)])
        var columns: [RelationInfo.Column] = []
        var types: [String] = []
        for row in 0..<result.rowCount {
            columns.append(
                .init(
                    name: result.string(row, 0) ?? "", typeOID: result.string(row, 1).flatMap { UInt32($0) } ?? 25,
                    isIdentity: result.string(row, 6) == "t"))
            types.append(result.string(row, 2) ?? "text")
        }
        let identityByte = result.string(0, 5)?.utf8.first ?? UInt8(ascii: "d")
        let identity = RelationInfo.ReplicaIdentity(rawValue: identityByte) ?? .default
        let reported = metadata.reportAs
        // The same key rules as the stream (RelationInfo), so consumers can match snapshot rows.
        let relation = RelationInfo(
            oid: table.oid, schema: reported?.schema ?? table.schema, table: reported?.table ?? table.name,
            replicaIdentity: identity, columns: columns, primaryKey: metadata.primaryKey,
            chunk: reported == nil ? nil : table.display)
        // Order and resume by a unique key: the primary key, else the replica-identity index.
        let primary = (metadata.primaryKey ?? []).compactMap { name in columns.firstIndex { $0.name == name } }
        var key = primary.count == (metadata.primaryKey ?? []).count ? primary : []
        if key.isEmpty && identity == .index { key = columns.indices.filter { columns[$0].isIdentity } }
        return SnapshotUnit(
            name: table.display, physical: table.qualified,
            relation: relation, columnList: columns.map { SQL.identifier($0.name) }.joined(separator: ", "),
            keyColumns: key, keyTypes: key.map { types[$0] }, filter: filter,
            estimatedRows: max(0, Int(result.string(0, 3) ?? "0") ?? 0),
            useOnly: !isChunk && result.string(0, 4) != "p")
    }

    /// Takes ACCESS SHARE locks on the units, as pg_dump does, so that compression, retention or
    /// DDL cannot swap or drop a table before it is read. Units that no longer exist are left out.
    func lockUnits(_ units: [SnapshotUnit], warn: (String) -> Void) throws -> [SnapshotUnit] {
        var locked: [SnapshotUnit] = []
        for unit in units {
            do {
                try connection.execute(
                    "SAVEPOINT pgbridge_lock; LOCK TABLE \(unit.useOnly ? "ONLY " : "")\(unit.physical) IN ACCESS SHARE MODE; "
                        + "RELEASE SAVEPOINT pgbridge_lock")
                locked.append(unit)
            } catch let error as PostgresError where error.sqlState == "42P01" {
                try connection.execute("ROLLBACK TO SAVEPOINT pgbridge_lock")
                warn(
                    "\(unit.name) was dropped before the snapshot could read it (e.g. by retention): its rows are not read"
                )
            }
        }
        return locked
    }

    /// Chunks oldest first: by range start when TimescaleDB's information view exists, else by
    /// creation order (OID).
    private func chunksInTimeOrder(of hypertable: Table, state: TimescaleState) throws -> [Table] {
        let chunks = try self.chunks(of: hypertable.oid)
        guard state.extensionInstalled else { return chunks }
        let ordered = try connection.execute(
            """
            SELECT chunk_schema || '.' || chunk_name FROM timescaledb_information.chunks
            WHERE hypertable_schema = $1 AND hypertable_name = $2 ORDER BY range_start NULLS LAST
            """, [hypertable.schema, hypertable.name])
        let rank = Dictionary(
            (0..<ordered.rowCount).compactMap { row in ordered.string(row, 0).map { ($0, row) } },
            uniquingKeysWith: { a, _ in a })
        return chunks.sorted { (rank[$0.display] ?? Int.max, $0.oid) < (rank[$1.display] ?? Int.max, $1.oid) }
    }

    /// The hypertable's first (time) dimension column from TimescaleDB's catalog, if it exists.
    private func timeDimension(of hypertable: Table) throws -> String? {
        guard
            try connection.execute("SELECT to_regclass('_timescaledb_catalog.dimension') IS NOT NULL").string(0, 0)
                == "t"
        else { return nil }
        let result = try connection.execute(
            """
            SELECT d.column_name FROM _timescaledb_catalog.dimension d
            JOIN _timescaledb_catalog.hypertable h ON h.id = d.hypertable_id
            WHERE h.schema_name = $1 AND h.table_name = $2 ORDER BY d.id LIMIT 1
            """, [hypertable.schema, hypertable.name])
        return result.string(0, 0)
    }
}
