import BridgeCore

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
}

extension CaptureCatalog {
    func snapshotPlan(
        tables: [Table], hypertables: Set<UInt32>, range: SnapshotRange?, state: TimescaleState,
        continuousAggregates: ContinuousAggregateMode
    ) throws -> [SnapshotUnit] {
        var units: [SnapshotUnit] = []
        for table in tables {
            if hypertables.contains(table.oid) {
                var filter: String?
                if let range {
                    let column = try range.column ?? timeDimension(of: table)
                    guard let column else {
                        throw PostgresError(
                            .prerequisite,
                            "snapshot_range needs the time column of hypertable \(table.display): set snapshot_range.column")
                    }
                    var terms: [String] = []
                    if let start = range.start { terms.append("\(SQL.identifier(column)) >= \(SQL.literal(start))") }
                    if let end = range.end { terms.append("\(SQL.identifier(column)) < \(SQL.literal(end))") }
                    filter = terms.joined(separator: " AND ")
                }
                for chunk in try chunksInTimeOrder(of: table, state: state) {
                    let metadata = try metadata(
                        oid: chunk.oid, schema: chunk.schema, continuousAggregates: continuousAggregates, state: state)
                    if metadata.isSuppressed { continue }
                    units.append(try unit(for: chunk, metadata: metadata, filter: filter))
                }
            } else {
                units.append(try unit(for: table, metadata: .init(primaryKey: try primaryKey(oid: table.oid)), filter: nil))
            }
        }
        return units
    }

    private func unit(for table: Table, metadata: PgOutputDecoder.RelationMetadata, filter: String?) throws -> SnapshotUnit {
        let result = try connection.execute(
            """
            SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod), c.reltuples::bigint
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            ORDER BY a.attnum
            """, [String(table.oid)])
        var columns: [RelationInfo.Column] = []
        var types: [String] = []
        for row in 0..<result.rowCount {
            columns.append(.init(name: result.string(row, 0) ?? "", typeOID: result.string(row, 1).flatMap { UInt32($0) } ?? 25))
            types.append(result.string(row, 2) ?? "text")
        }
        let key = (metadata.primaryKey ?? []).compactMap { name in columns.firstIndex { $0.name == name } }
        let reported = metadata.reportAs
        let relation = RelationInfo(
            oid: table.oid, schema: reported?.schema ?? table.schema, table: reported?.table ?? table.name,
            replicaIdentity: .default, columns: columns, primaryKey: metadata.primaryKey,
            chunk: reported == nil ? nil : table.display)
        return SnapshotUnit(
            name: table.display, physical: table.qualified,
            relation: relation, columnList: columns.map { SQL.identifier($0.name) }.joined(separator: ", "),
            keyColumns: key, keyTypes: key.map { types[$0] }, filter: filter,
            estimatedRows: max(0, Int(result.string(0, 3) ?? "0") ?? 0))
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
            (0..<ordered.rowCount).compactMap { row in ordered.string(row, 0).map { ($0, row) } }, uniquingKeysWith: { a, _ in a })
        return chunks.sorted { (rank[$0.display] ?? Int.max, $0.oid) < (rank[$1.display] ?? Int.max, $1.oid) }
    }

    /// The hypertable's first (time) dimension column from TimescaleDB's catalog, if it exists.
    private func timeDimension(of hypertable: Table) throws -> String? {
        guard try connection.execute("SELECT to_regclass('_timescaledb_catalog.dimension') IS NOT NULL").string(0, 0) == "t"
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
