import BridgeCore
import PostgresClient

/// Tables and columns the REST proxy accepts, read from the catalog and kept for a few seconds.
actor TableCatalog {
    /// A connection of its own: catalog lookups never wait behind busy requests.
    private let session: SQLSession
    private var cache: [String: (table: TableInfo?, at: ContinuousClock.Instant)] = [:]
    private var timescale: (present: Bool, at: ContinuousClock.Instant)?
    private var functionCache: [String: (functions: [FunctionInfo], at: ContinuousClock.Instant)] = [:]
    static let lifetime: Duration = .seconds(5)
    /// The most tables (found or not) kept at once: requests for ever new names must not grow
    /// memory. When full, expired entries go first, then the oldest.
    let maxEntries: Int

    init(pool: SQLPool, maxEntries: Int = 1_024) {
        self.session = pool.dedicatedSession(label: "pgbridge-api-catalog")
        self.maxEntries = maxEntries
    }

    /// Tables kept now (tests).
    var cachedCount: Int { cache.count }

    /// Schemas the proxy never serves: pgbridge's own, the system catalogs, TimescaleDB's internals.
    static func isHidden(schema: String) -> Bool { APIConfig.isHiddenSchema(schema) }

    /// The table, or nil when it does not exist (or is hidden).
    func table(schema: String, name: String) async throws -> TableInfo? {
        if Self.isHidden(schema: schema) { return nil }
        let key = "\(schema)\u{0}\(name)"
        if let cached = cache[key], ContinuousClock.now - cached.at < Self.lifetime { return cached.table }
        let table = try await session.run { connection -> TableInfo? in
            let columns = try connection.execute(
                """
                SELECT a.attname, format_type(a.atttypid, a.atttypmod)
                FROM pg_attribute a
                JOIN pg_class c ON c.oid = a.attrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                  AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum
                """, [schema, name])
            guard columns.rowCount > 0 else { return nil }
            var table = TableInfo(
                schema: schema, name: name,
                columns: (0..<columns.rowCount).map {
                    TableInfo.Column(name: columns.string($0, 0) ?? "", type: columns.string($0, 1) ?? "")
                })
            let key = try connection.execute(
                """
                SELECT a.attname FROM pg_index i
                JOIN pg_class c ON c.oid = i.indrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
                WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
                ORDER BY array_position(i.indkey, a.attnum)
                """, [schema, name])
            table.primaryKey = (0..<key.rowCount).compactMap { key.string($0, 0) }
            table.relationships = try Self.relationships(connection, schema: schema, name: name)
            // TimescaleDB's own catalog (the same tables pgbridge's capture reads).
            let hasDimensions =
                try connection.execute("SELECT to_regclass('_timescaledb_catalog.dimension') IS NOT NULL")
                .string(0, 0) == "t"
            if hasDimensions {
                table.timeColumn = try connection.execute(
                    """
                    SELECT d.column_name::text FROM _timescaledb_catalog.dimension d
                    JOIN _timescaledb_catalog.hypertable h ON h.id = d.hypertable_id
                    WHERE h.schema_name = $1 AND h.table_name = $2 ORDER BY d.id LIMIT 1
                    """, [schema, name]
                ).string(0, 0)
            }
            return table
        }
        store(table, key: key)
        return table
    }

    private func store(_ table: TableInfo?, key: String) {
        let now = ContinuousClock.now
        if cache[key] == nil, cache.count >= maxEntries {
            cache = cache.filter { now - $0.value.at < Self.lifetime }
            while cache.count >= maxEntries, let oldest = cache.min(by: { $0.value.at < $1.value.at }) {
                cache[oldest.key] = nil
            }
        }
        cache[key] = (table, now)
    }

    /// TimescaleDB is installed: buckets use `time_bucket`, else `date_bin`.
    func hasTimescaleDB() async throws -> Bool {
        if let timescale, ContinuousClock.now - timescale.at < .seconds(60) { return timescale.present }
        let present = try await session.run { connection in
            try connection.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").string(0, 0)
                == "1"
        }
        timescale = (present, .now)
        return present
    }

    /// The overloads of a function (none when it does not exist or its schema is hidden).
    func functions(schema: String, name: String) async throws -> [FunctionInfo] {
        if Self.isHidden(schema: schema) { return [] }
        let key = "\(schema)\u{0}\(name)"
        let now = ContinuousClock.now
        if let cached = functionCache[key], now - cached.at < Self.lifetime { return cached.functions }
        let found = try await session.run { connection in try Self.functions(connection, schema: schema, name: name) }
        if functionCache[key] == nil, functionCache.count >= maxEntries {
            functionCache = functionCache.filter { now - $0.value.at < Self.lifetime }
            if functionCache.count >= maxEntries { functionCache.removeAll() }
        }
        functionCache[key] = (found, now)
        return found
    }

    /// Forgets a table after an error that suggests its definition changed.
    func invalidate(schema: String, name: String) {
        cache["\(schema)\u{0}\(name)"] = nil
        functionCache["\(schema)\u{0}\(name)"] = nil
    }
}
