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

    /// What to report for a decoded relation that exists in the live catalog: its primary key
    /// and, for a chunk, the hypertable (or the continuous aggregate's view, or nothing when those
    /// are dropped). `hypertables` maps `schema.name` to catalog ids.
    func metadata(
        oid: UInt32, schema: String, name: String, continuousAggregates: ContinuousAggregateMode, state: TimescaleState,
        hypertables: [String: Int64]
    ) throws -> PgOutputDecoder.RelationMetadata {
        var metadata = PgOutputDecoder.RelationMetadata()
        let key = try primaryKey(oid: oid)
        metadata.primaryKey = key.isEmpty ? nil : key
        if let table = TimescaleCatalogTable.named(schema: schema, table: name) {
            metadata.timescaleCatalog = table
            return metadata
        }
        let parent = try connection.execute(
            """
            SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhrelid = $1::oid LIMIT 1
            """, [String(oid)])
        guard parent.rowCount == 1, let parentSchema = parent.string(0, 0), let parentName = parent.string(0, 1) else {
            return metadata
        }
        metadata.parent = (parentSchema, parentName)
        guard state.isPresent || schema == Self.chunkSchema else { return metadata }
        let hypertable: ChunkMap.Hypertable
        if state.hasHypertableCatalog {
            // Plain inheritance or a partition when the parent is not a hypertable.
            guard let id = hypertables["\(parentSchema).\(parentName)"] else { return metadata }
            hypertable = ChunkMap.Hypertable(id: id, schema: parentSchema, name: parentName)
        } else if schema == Self.chunkSchema {
            hypertable = ChunkMap.Hypertable(id: -1, schema: parentSchema, name: parentName)
        } else {
            return metadata
        }
        var chunk = try chunkMetadata(
            of: hypertable, continuousAggregates: continuousAggregates, state: state)
        if metadata.primaryKey != nil { chunk.primaryKey = metadata.primaryKey }
        return chunk
    }

    /// What to report for a chunk of `hypertable` (whether or not the chunk still exists): the
    /// hypertable's name and primary key, or its continuous aggregate's view.
    func chunkMetadata(
        of hypertable: ChunkMap.Hypertable, continuousAggregates: ContinuousAggregateMode, state: TimescaleState
    ) throws -> PgOutputDecoder.RelationMetadata {
        var metadata = PgOutputDecoder.RelationMetadata()
        metadata.parent = (hypertable.schema, hypertable.name)
        metadata.reportAs = (hypertable.schema, hypertable.name)
        let oid = try connection.execute(
            "SELECT to_regclass(quote_ident($1) || '.' || quote_ident($2))::oid", [hypertable.schema, hypertable.name]
        ).string(0, 0).flatMap { UInt32($0) }
        if let oid {
            let key = try primaryKey(oid: oid)
            metadata.primaryKey = key.isEmpty ? nil : key
        }
        if state.hasContinuousAggregateCatalog, hypertable.id >= 0 {
            let view = try connection.execute(
                "SELECT user_view_schema, user_view_name FROM _timescaledb_catalog.continuous_agg WHERE mat_hypertable_id = $1::int",
                [String(hypertable.id)])
            if view.rowCount == 1, let viewSchema = view.string(0, 0), let viewName = view.string(0, 1) {
                metadata.reportAs = (viewSchema, viewName)
                metadata.isSuppressed = continuousAggregates == .drop
            }
        }
        return metadata
    }
}
