import BridgeCore
import PostgresClient

extension PostgresSink {
    /// A column of the source table as the catalog describes it.
    struct SourceColumn {
        var name: String
        var type: String
        var notNull: Bool
    }

    /// The source table's columns and primary key, read on a connection to the source.
    func sourceTable(schema: String, name: String, _ sql: SQLConnection) throws
        -> (columns: [SourceColumn], key: [String])
    {
        let qualified = TargetTable.qualified(schema: schema, name: name)
        let columns = try sql.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
            """, [qualified])
        let key = try sql.execute(
            """
            SELECT a.attname FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.ord
            """, [qualified])
        return (
            (0..<columns.rowCount).map {
                SourceColumn(
                    name: columns.string($0, 0) ?? "", type: columns.string($0, 1) ?? "text",
                    notNull: columns.string($0, 2) == "t")
            },
            (0..<key.rowCount).compactMap { key.string($0, 0) }
        )
    }

    /// `create_tables: true`: the target table like the source's (`apply`, `append` with
    /// `columns: flatten`), or the history table of `append` with `columns: json`.
    func createTable(_ work: DeliveryPlan.TableWork, _ sql: SQLConnection) throws {
        let qualified = TargetTable.qualified(schema: work.schema, name: work.name)
        if let schema = work.schema { try sql.execute("CREATE SCHEMA IF NOT EXISTS \(SQL.identifier(schema))") }
        var origin: SQLConnection?  // apply: the source's catalog, also for its hypertable dimension
        let definition: [String]
        switch (config.mode, config.columns) {
        case (.append, .json):
            definition = [
                "op text NOT NULL", "id text NOT NULL", "commit_lsn pg_lsn", "commit_time timestamptz",
                "before jsonb", "after jsonb",
            ]
        case (.append, .flatten):
            let source = try sourceTable(schema: work.sourceSchema, name: work.sourceTable, try sourceConnection())
            definition =
                ["_op text NOT NULL", "_id text NOT NULL", "_commit_lsn pg_lsn", "_commit_time timestamptz"]
                + source.columns.map { "\(SQL.identifier($0.name)) \($0.type)" }
        case (.apply, _):
            let connection = try sourceConnection()
            origin = connection
            let source = try sourceTable(schema: work.sourceSchema, name: work.sourceTable, connection)
            var columns = source.columns.map {
                "\(SQL.identifier($0.name)) \($0.type)\($0.notNull ? " NOT NULL" : "")"
            }
            let key = source.key.isEmpty ? work.keyColumns : source.key
            if !key.isEmpty { columns.append("PRIMARY KEY (\(key.map(SQL.identifier).joined(separator: ", ")))") }
            definition = columns
        }
        try sql.execute("CREATE TABLE IF NOT EXISTS \(qualified) (\(definition.joined(separator: ", ")))")
        logger.notice(
            "postgres sink \(sinkName): created \(qualified) like \(work.sourceSchema).\(work.sourceTable) (create_tables: true)",
            metadata: ["pipe": "\(pipe)"])
        if let origin { try makeHypertable(qualified, like: work, sql, origin: origin) }
    }

    /// A source hypertable's time dimension: its column and chunk interval (microseconds for time
    /// types, the integer for integer time), from TimescaleDB's catalog; nil for a plain table.
    func sourceTimeDimension(schema: String, name: String, _ sql: SQLConnection) throws
        -> (column: String, interval: String, isTime: Bool)?
    {
        guard try sql.execute("SELECT to_regclass('_timescaledb_catalog.dimension') IS NOT NULL").string(0, 0) == "t"
        else { return nil }
        let row = try sql.execute(
            """
            SELECT d.column_name, d.interval_length, d.column_type::regtype::text IN ('timestamp with time zone',
                   'timestamp without time zone', 'date')
            FROM _timescaledb_catalog.hypertable h JOIN _timescaledb_catalog.dimension d ON d.hypertable_id = h.id
            WHERE h.schema_name = $1 AND h.table_name = $2 AND d.interval_length IS NOT NULL ORDER BY d.id LIMIT 1
            """, [schema, name])
        guard row.rowCount == 1, let column = row.string(0, 0), let interval = row.string(0, 1) else { return nil }
        return (column, interval, row.string(0, 2) == "t")
    }

    /// Turns a table just created like a source hypertable into a hypertable on the same time
    /// column with the same chunk interval, when the target has TimescaleDB.
    func makeHypertable(
        _ qualified: String, like work: DeliveryPlan.TableWork, _ sql: SQLConnection, origin: SQLConnection
    ) throws {
        guard let dimension = try sourceTimeDimension(schema: work.sourceSchema, name: work.sourceTable, origin) else {
            return
        }
        let hasTimescale = try sql.execute("SELECT count(*) > 0 FROM pg_proc WHERE proname = 'create_hypertable'")
        guard hasTimescale.string(0, 0) == "t" else {
            logger.warning(
                "postgres sink \(sinkName): \(work.sourceSchema).\(work.sourceTable) is a hypertable but the target has no TimescaleDB: created \(qualified) as a plain table. Install TimescaleDB on the target and convert it with create_hypertable to keep chunks",
                metadata: ["pipe": "\(pipe)"])
            return
        }
        let interval =
            dimension.isTime ? "$3::bigint * interval '1 microsecond'" : "$3::bigint"
        try sql.execute(
            "SELECT * FROM create_hypertable($1::regclass, $2::name, chunk_time_interval => \(interval), if_not_exists => true)",
            [qualified, dimension.column, dimension.interval])
        logger.notice(
            "postgres sink \(sinkName): made \(qualified) a hypertable on \(dimension.column) like the source (chunk interval \(dimension.interval)\(dimension.isTime ? " µs" : ""))",
            metadata: ["pipe": "\(pipe)"])
    }

    /// `on_new_column: add`: the source's new columns, with the source's types.
    func addColumns(_ names: [String], to target: TargetTable, work: DeliveryPlan.TableWork, _ sql: SQLConnection)
        throws
    {
        let source = try sourceTable(schema: work.sourceSchema, name: work.sourceTable, try sourceConnection())
        for name in names {
            guard let column = source.columns.first(where: { $0.name == name }) else { continue }
            try sql.execute(
                "ALTER TABLE \(target.qualified) ADD COLUMN IF NOT EXISTS \(SQL.identifier(name)) \(column.type)")
            logger.notice(
                "postgres sink \(sinkName): added column \(name) \(column.type) to \(target.qualified) (on_new_column: add)",
                metadata: ["pipe": "\(pipe)"])
        }
    }
}
