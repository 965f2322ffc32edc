import BridgeCore
import PostgresClient

extension PostgresSink {
    /// A column of the source table as the catalog describes it.
    struct SourceColumn {
        var name: String
        var type: String
        var notNull: Bool
    }

    /// The source table's columns and primary key (read on a short connection to the source).
    func sourceTable(schema: String, name: String) throws -> (columns: [SourceColumn], key: [String]) {
        guard let source else {
            throw PostgresError(.prerequisite, "the source database is unknown to this sink", retriable: false)
        }
        let connection = try PGConnection(url: source.postgres.url, mode: .normal, applicationName: "pgbridge schema")
        let sql = SQLConnection(connection: connection)
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
        if let schema = work.schema { try sql.execute("CREATE SCHEMA IF NOT EXISTS \(TargetTable.quote(schema))") }
        let definition: [String]
        switch (config.mode, config.columns) {
        case (.append, .json):
            definition = [
                "op text NOT NULL", "id text NOT NULL", "commit_lsn pg_lsn", "commit_time timestamptz",
                "before jsonb", "after jsonb",
            ]
        case (.append, .flatten):
            let source = try sourceTable(schema: work.sourceSchema, name: work.sourceTable)
            definition =
                ["_op text NOT NULL", "_id text NOT NULL", "_commit_lsn pg_lsn", "_commit_time timestamptz"]
                + source.columns.map { "\(TargetTable.quote($0.name)) \($0.type)" }
        case (.apply, _):
            let source = try sourceTable(schema: work.sourceSchema, name: work.sourceTable)
            var columns = source.columns.map {
                "\(TargetTable.quote($0.name)) \($0.type)\($0.notNull ? " NOT NULL" : "")"
            }
            let key = source.key.isEmpty ? work.keyColumns : source.key
            if !key.isEmpty { columns.append("PRIMARY KEY (\(key.map(TargetTable.quote).joined(separator: ", ")))") }
            definition = columns
        }
        try sql.execute("CREATE TABLE IF NOT EXISTS \(qualified) (\(definition.joined(separator: ", ")))")
        logger.notice(
            "postgres sink \(sinkName): created \(qualified) like \(work.sourceSchema).\(work.sourceTable) (create_tables: true)",
            metadata: ["pipe": "\(pipe)"])
    }

    /// `on_new_column: add`: the source's new columns, with the source's types.
    func addColumns(_ names: [String], to target: TargetTable, work: DeliveryPlan.TableWork, _ sql: SQLConnection)
        throws
    {
        let source = try sourceTable(schema: work.sourceSchema, name: work.sourceTable)
        for name in names {
            guard let column = source.columns.first(where: { $0.name == name }) else { continue }
            try sql.execute(
                "ALTER TABLE \(target.qualified) ADD COLUMN IF NOT EXISTS \(TargetTable.quote(name)) \(column.type)")
            logger.notice(
                "postgres sink \(sinkName): added column \(name) \(column.type) to \(target.qualified) (on_new_column: add)",
                metadata: ["pipe": "\(pipe)"])
        }
    }
}
