import BridgeCore

/// What pgbridge remembers about a chunk so that retention (`drop_chunks`, seen only as a
/// key-only delete of its `_timescaledb_catalog.chunk` row) can be reported.
struct ChunkRecord: Sendable, Equatable {
    let id: Int64
    let hypertableSchema: String
    let hypertableName: String
    /// `schema.table` of the chunk.
    let chunk: String
    /// Range of the first (time) dimension: RFC 3339 for time columns, the integer otherwise;
    /// nil when open-ended or unknown.
    let rangeStart: String?
    let rangeEnd: String?
}

extension CaptureCatalog {
    static let chunkCatalog = "_timescaledb_catalog.chunk"

    func chunkRowExists(id: Int64) throws -> Bool {
        try connection.execute(
            "SELECT EXISTS (SELECT 1 FROM _timescaledb_catalog.chunk WHERE id = $1::int)", [String(id)]
        )
        .string(0, 0) == "t"
    }

    /// Chunks of the given hypertables from TimescaleDB's catalog (2.14–2.28 columns, and the
    /// 2.29+ `relid` form); empty when the catalog does not exist.
    func chunkRecords(hypertables: [Table]) throws -> [Int64: ChunkRecord] {
        guard !hypertables.isEmpty,
            try connection.execute("SELECT to_regclass('_timescaledb_catalog.chunk') IS NOT NULL").string(0, 0) == "t"
        else { return [:] }
        let hasNames =
            try connection.execute(
                """
                SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '_timescaledb_catalog.chunk'::regclass
                               AND attname = 'table_name' AND NOT attisdropped)
                """
            ).string(0, 0) == "t"
        let hasSlices =
            try connection.execute(
                """
                SELECT to_regclass('_timescaledb_catalog.dimension_slice') IS NOT NULL
                   AND to_regclass('_timescaledb_catalog.chunk_constraint') IS NOT NULL
                   AND to_regclass('_timescaledb_catalog.dimension') IS NOT NULL
                """
            ).string(0, 0) == "t"
        let chunkName =
            hasNames
            ? "c.schema_name || '.' || c.table_name"
            : "(SELECT n.nspname || '.' || cl.relname FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE cl.oid = c.relid)"
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
        let schemas = SQL.textArray(hypertables.map(\.schema))
        let names = SQL.textArray(hypertables.map(\.name))
        let result = try connection.execute(
            """
            SELECT c.id, h.schema_name, h.table_name, \(chunkName), \(bound("range_start")), \(bound("range_end"))
            FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
            \(range)
            WHERE (h.schema_name::text, h.table_name::text) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            """, [schemas, names])
        var records: [Int64: ChunkRecord] = [:]
        for row in 0..<result.rowCount {
            guard let id = result.string(row, 0).flatMap({ Int64($0) }) else { continue }
            records[id] = ChunkRecord(
                id: id, hypertableSchema: result.string(row, 1) ?? "", hypertableName: result.string(row, 2) ?? "",
                chunk: result.string(row, 3) ?? "", rangeStart: result.string(row, 4), rangeEnd: result.string(row, 5))
        }
        return records
    }
}
