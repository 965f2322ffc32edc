import BridgeCore

/// What a `chunk_dropped` event reports: a chunk of a captured hypertable, and the hypertable.
/// The chunk's range is that of the first (time) dimension: RFC 3339 for time columns, the
/// integer otherwise; nil when open-ended or unknown.
struct ChunkRecord: Sendable, Equatable {
    let hypertable: ChunkMap.Hypertable
    let chunk: ChunkMap.Chunk
}

extension CaptureCatalog {
    static let chunkCatalog = "_timescaledb_catalog.chunk"

    /// Every hypertable in TimescaleDB's catalog; empty when there is no catalog.
    func hypertableList() throws -> [ChunkMap.Hypertable] {
        guard try exists("_timescaledb_catalog.hypertable") else { return [] }
        let result = try connection.execute("SELECT id, schema_name, table_name FROM _timescaledb_catalog.hypertable")
        return (0..<result.rowCount).compactMap { row in
            guard let id = result.string(row, 0).flatMap({ Int64($0) }), let schema = result.string(row, 1),
                let name = result.string(row, 2)
            else { return nil }
            return ChunkMap.Hypertable(id: id, schema: schema, name: name)
        }
    }

    /// Catalog ids of hypertables by `schema.name`.
    func hypertableIDsByName() throws -> [String: Int64] {
        Dictionary(try hypertableList().map { ($0.display, $0.id) }, uniquingKeysWith: { first, _ in first })
    }

    /// Chunks in TimescaleDB's catalog (2.14–2.28 columns, and the 2.29+ `relid` form), with the
    /// range of their first dimension: all of them, or the one with `id`. Empty without a catalog.
    func chunkList(id: Int64? = nil) throws -> [ChunkMap.Chunk] {
        guard try exists("_timescaledb_catalog.chunk") else { return [] }
        let hasNames =
            try connection.execute(
                """
                SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '_timescaledb_catalog.chunk'::regclass
                               AND attname = 'table_name' AND NOT attisdropped)
                """
            ).string(0, 0) == "t"
        let hasSlices =
            try exists("_timescaledb_catalog.dimension_slice") && exists("_timescaledb_catalog.chunk_constraint")
            && exists("_timescaledb_catalog.dimension")
        let chunkName =
            hasNames
            ? "c.schema_name::text, c.table_name::text"
            : """
            (SELECT n.nspname::text FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE cl.oid = c.relid),
            (SELECT cl.relname::text FROM pg_class cl WHERE cl.oid = c.relid)
            """
        // Slice bounds are int64 (microseconds since the Unix epoch for time dimensions); the
        // int64 extremes mean "open".
        func bound(_ column: String) -> String {
            """
            CASE WHEN r.\(column) IS NULL OR r.\(column) IN (-9223372036854775808, 9223372036854775807) THEN NULL
                 WHEN r.column_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
                 THEN to_char(to_timestamp(r.\(column) / 1000000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                 ELSE r.\(column)::text END
            """
        }
        let range =
            hasSlices
            ? """
            LEFT JOIN LATERAL (
                SELECT ds.range_start, ds.range_end, d.column_type FROM _timescaledb_catalog.chunk_constraint cc
                JOIN _timescaledb_catalog.dimension_slice ds ON ds.id = cc.dimension_slice_id
                JOIN _timescaledb_catalog.dimension d ON d.id = ds.dimension_id
                WHERE cc.chunk_id = c.id ORDER BY d.id LIMIT 1) r ON true
            """
            : "LEFT JOIN LATERAL (SELECT NULL::bigint AS range_start, NULL::bigint AS range_end, NULL::regtype AS column_type) r ON true"
        let result = try connection.execute(
            """
            SELECT c.id, c.hypertable_id, \(chunkName), \(bound("range_start")), \(bound("range_end"))
            FROM _timescaledb_catalog.chunk c \(range)
            WHERE $1::int IS NULL OR c.id = $1::int
            """, [id.map(String.init)])
        return (0..<result.rowCount).compactMap { row in
            guard let id = result.string(row, 0).flatMap({ Int64($0) }),
                let hypertableID = result.string(row, 1).flatMap({ Int64($0) }), let schema = result.string(row, 2),
                let name = result.string(row, 3)
            else { return nil }
            return ChunkMap.Chunk(
                id: id, hypertableID: hypertableID, schema: schema, name: name, rangeStart: result.string(row, 4),
                rangeEnd: result.string(row, 5))
        }
    }

    /// Whether the transaction `xid` is still running (its commit may not be visible yet to
    /// other sessions although it was decoded): a transaction holds a lock on its own id until
    /// it ends. Used instead of polling for a relation or catalog row that may never appear.
    func transactionIsRunning(xid: UInt32) throws -> Bool {
        try connection.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'transactionid' AND transactionid = $1::xid)",
            [String(xid)]
        ).string(0, 0) == "t"
    }

    func exists(_ relation: String) throws -> Bool {
        try connection.execute("SELECT to_regclass($1) IS NOT NULL", [relation]).string(0, 0) == "t"
    }
}
