import BridgeCore

/// TimescaleDB awareness without depending on the extension: chunks are found through
/// `pg_inherits` (version-proof); `_timescaledb_catalog` tables are used when they exist.
extension CaptureCatalog {
    struct TimescaleState {
        /// The `timescaledb` extension is installed.
        let extensionInstalled: Bool
        /// `_timescaledb_catalog.hypertable` exists (real extension, or a test fixture of it).
        let hasHypertableCatalog: Bool
        let hasContinuousAggregateCatalog: Bool

        var isPresent: Bool { extensionInstalled || hasHypertableCatalog }
    }

    static let chunkSchema = "_timescaledb_internal"

    func timescaleState() throws -> TimescaleState {
        let result = try connection.execute(
            """
            SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
                   to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL,
                   to_regclass('_timescaledb_catalog.continuous_agg') IS NOT NULL
            """)
        return TimescaleState(
            extensionInstalled: result.string(0, 0) == "t", hasHypertableCatalog: result.string(0, 1) == "t",
            hasContinuousAggregateCatalog: result.string(0, 2) == "t")
    }

    /// OIDs of the given tables that are hypertables.
    func hypertables(among tables: [Table], state: TimescaleState) throws -> Set<UInt32> {
        guard !tables.isEmpty else { return [] }
        let oids = "{" + tables.map { String($0.oid) }.joined(separator: ",") + "}"
        let sql: String
        if state.hasHypertableCatalog {
            sql = """
                SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN _timescaledb_catalog.hypertable h ON h.schema_name = n.nspname AND h.table_name = c.relname
                WHERE c.oid = ANY($1::oid[])
                """
        } else {
            // No catalog: a table with inheritance children in the chunk schema.
            sql = """
                SELECT DISTINCT i.inhparent FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE i.inhparent = ANY($1::oid[]) AND n.nspname = '\(Self.chunkSchema)'
                """
        }
        let result = try connection.execute(sql, [oids])
        return Set((0..<result.rowCount).compactMap { result.string($0, 0).flatMap { UInt32($0) } })
    }

    /// The chunks of a hypertable (its inheritance children), oldest first.
    func chunks(of hypertable: UInt32) throws -> [Table] {
        let result = try connection.execute(
            """
            SELECT c.oid, n.nspname, c.relname, c.relreplident::text,
                   EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE i.inhparent = $1::oid ORDER BY c.oid
            """, [String(hypertable)])
        return (0..<result.rowCount).compactMap { row in
            guard let oid = result.string(row, 0).flatMap({ UInt32($0) }) else { return nil }
            return Table(
                oid: oid, schema: result.string(row, 1) ?? "", name: result.string(row, 2) ?? "",
                replicaIdentity: result.string(row, 3)?.first ?? "d", hasPrimaryKey: result.string(row, 4) == "t")
        }
    }

    /// What to report for a decoded relation: its primary key and, for a chunk, the hypertable
    /// (or the continuous aggregate's view, or nothing when those are dropped).
    func metadata(
        oid: UInt32, schema: String, name: String, continuousAggregates: ContinuousAggregateMode, state: TimescaleState
    ) throws -> PgOutputDecoder.RelationMetadata {
        var metadata = PgOutputDecoder.RelationMetadata()
        let key = try primaryKey(oid: oid)
        metadata.primaryKey = key.isEmpty ? nil : key
        if schema == "_timescaledb_catalog" {
            metadata.isChunkCatalog =
                try connection.execute(
                    "SELECT $1::oid = to_regclass('_timescaledb_catalog.chunk')::oid", [String(oid)]
                ).string(0, 0) == "t"
            return metadata
        }
        let parent = try connection.execute(
            """
            SELECT n.nspname, c.relname, c.oid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhrelid = $1::oid LIMIT 1
            """, [String(oid)])
        var parentSchema: String
        var parentName: String
        var parentOID: UInt32?
        var hypertableID: String?
        if parent.rowCount == 1, let foundSchema = parent.string(0, 0), let foundName = parent.string(0, 1) {
            parentSchema = foundSchema
            parentName = foundName
            parentOID = parent.string(0, 2).flatMap { UInt32($0) }
            metadata.parent = (parentSchema, parentName)
            guard state.isPresent || schema == Self.chunkSchema else { return metadata }
            if state.hasHypertableCatalog {
                let hypertable = try connection.execute(
                    "SELECT id FROM _timescaledb_catalog.hypertable WHERE schema_name = $1 AND table_name = $2",
                    [parentSchema, parentName])
                guard hypertable.rowCount == 1 else { return metadata }  // plain inheritance or a partition
                hypertableID = hypertable.string(0, 0)
            } else if schema != Self.chunkSchema {
                return metadata
            }
        } else if schema == Self.chunkSchema, state.hasHypertableCatalog,
            let id = Self.hypertableID(fromChunkName: name)
        {
            // The chunk is gone (dropped since this change was written): TimescaleDB names
            // chunks _hyper_<hypertable id>_<chunk id>_chunk.
            let hypertable = try connection.execute(
                "SELECT schema_name, table_name FROM _timescaledb_catalog.hypertable WHERE id = $1::int", [id])
            guard hypertable.rowCount == 1, let foundSchema = hypertable.string(0, 0),
                let foundName = hypertable.string(0, 1)
            else { return metadata }
            parentSchema = foundSchema
            parentName = foundName
            hypertableID = id
            metadata.parent = (parentSchema, parentName)
        } else {
            return metadata
        }
        if metadata.primaryKey == nil, let parentOID {
            let parentKey = try primaryKey(oid: parentOID)
            metadata.primaryKey = parentKey.isEmpty ? nil : parentKey
        }
        metadata.reportAs = (parentSchema, parentName)
        if state.hasContinuousAggregateCatalog, let hypertableID {
            let view = try connection.execute(
                "SELECT user_view_schema, user_view_name FROM _timescaledb_catalog.continuous_agg WHERE mat_hypertable_id = $1::int",
                [hypertableID])
            if view.rowCount == 1, let viewSchema = view.string(0, 0), let viewName = view.string(0, 1) {
                metadata.reportAs = (viewSchema, viewName)
                metadata.isSuppressed = continuousAggregates == .drop
            }
        }
        return metadata
    }

    /// `_hyper_12_345_chunk` → "12".
    static func hypertableID(fromChunkName name: String) -> String? {
        let parts = name.split(separator: "_")
        guard name.hasPrefix("_hyper_"), name.hasSuffix("_chunk"), parts.count == 4, parts[1] == "hyper",
            parts[2].allSatisfy(\.isNumber), parts[3] != ""
        else { return nil }
        return String(parts[2])
    }
}
