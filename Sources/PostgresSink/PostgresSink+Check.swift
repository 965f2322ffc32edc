import BridgeCore
import PostgresClient

extension PostgresSink {
    /// What `pgbridge check` reports for this sink: for each source table the pipe captures, the
    /// target table (exists, has the key, has the columns, may be written) and whether positions
    /// can be recorded. Reads only: nothing is created.
    public func targetProblems(tables patterns: [TablePattern]) async throws -> [String] {
        try await target.run { [self] _ in try targetProblems(patterns) }
    }

    func targetProblems(_ patterns: [TablePattern]) throws -> [String] {
        guard source?.postgres != nil else { return [] }
        let target = SQLConnection(
            connection: try PGConnection(url: config.url, mode: .normal, applicationName: "pgbridge check"))
        let origin = try sourceConnection()
        var problems: [String] = []
        let sameDatabase = try Self.isSameDatabase(target, origin)
        let database = try origin.execute("SELECT current_database()").string(0, 0) ?? ""
        for (schema, name) in try sourceTables(patterns, origin) {
            let qualified = try renderedTable(db: database, schema: schema, table: name)
            let label = "\(schema).\(name) → \(TargetTable.qualified(schema: qualified.schema, name: qualified.name))"
            if sameDatabase, (qualified.schema ?? "public") == schema, qualified.name == name {
                problems.append("\(label): the target is the source table itself (a loop)")
                continue
            }
            guard let table = try TargetTable.load(schema: qualified.schema, name: qualified.name, target) else {
                if !config.createTables {
                    problems.append("\(label): the target table does not exist: create it or set create_tables: true")
                }
                continue
            }
            let described = try sourceTable(schema: schema, name: name, origin)
            if config.mode == .apply {
                if described.key.isEmpty {
                    problems.append(
                        "\(label): the source table has no primary key: its changes cannot be applied by key (use mode: append)"
                    )
                } else if table.uniqueKey(matching: described.key) == nil {
                    let key = described.key.map(SQL.identifier).joined(separator: ", ")
                    problems.append(
                        "\(label): no primary key or unique index on (\(key)): ALTER TABLE \(table.qualified) ADD PRIMARY KEY (\(key))"
                    )
                }
            }
            let skipColumns = config.mode == .append && config.columns == .json
            let missing = skipColumns ? [] : described.columns.map(\.name).filter { table.column($0) == nil }
            if !missing.isEmpty, config.onNewColumn != .add {
                problems.append(
                    "\(label): the target lacks column(s) \(missing.joined(separator: ", ")): add them or set on_new_column: add"
                )
            }
            let privileges = config.mode == .apply ? ["INSERT", "UPDATE", "DELETE", "TRUNCATE"] : ["INSERT"]
            let denied = try privileges.filter {
                try target.execute("SELECT has_table_privilege($1, $2)", [table.qualified, $0]).string(0, 0) != "t"
            }
            if !denied.isEmpty {
                problems.append(
                    "\(label): the target role lacks \(denied.joined(separator: ", ")): GRANT \(denied.joined(separator: ", ")) ON \(table.qualified) TO <role>"
                )
            }
        }
        let positions = try target.execute(
            """
            SELECT to_regclass('pgbridge.sink_positions') IS NOT NULL,
                   CASE WHEN to_regclass('pgbridge.sink_positions') IS NULL THEN has_database_privilege(current_database(), 'CREATE')
                        ELSE has_table_privilege('pgbridge.sink_positions', 'INSERT')
                             AND has_table_privilege('pgbridge.sink_positions', 'UPDATE') END
            """)
        if positions.string(0, 1) != "t" {
            problems.append(
                positions.string(0, 0) == "t"
                    ? "the target role may not write pgbridge.sink_positions: GRANT INSERT, UPDATE, SELECT ON pgbridge.sink_positions TO <role>"
                    : "pgbridge.sink_positions is missing and the target role may not create it: run pgbridge setup --url <target> once as an owner"
            )
        }
        return problems
    }

    /// The source's tables that `patterns` name (chunks and TimescaleDB's own tables left out).
    func sourceTables(_ patterns: [TablePattern], _ origin: SQLConnection) throws -> [(String, String)] {
        var tables: [(String, String)] = []
        for pattern in patterns {
            let rows = try origin.execute(
                """
                SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND n.nspname = $1 AND ($2::text IS NULL OR c.relname = $2)
                  AND n.nspname NOT LIKE '\\_timescaledb%' ORDER BY 2
                """, [pattern.schema, pattern.table])
            for row in 0..<rows.rowCount {
                let table = (rows.string(row, 0) ?? "", rows.string(row, 1) ?? "")
                if !tables.contains(where: { $0 == table }) { tables.append(table) }
            }
        }
        return tables
    }

    /// The target table the `table` template names for a source table.
    func renderedTable(db: String, schema: String, table: String) throws -> (schema: String?, name: String) {
        var event: [UInt8] = []
        JSONBytes.appendRaw("{\"source\":{\"db\":", into: &event)
        JSONBytes.appendString(db, into: &event)
        JSONBytes.appendRaw(",\"schema\":", into: &event)
        JSONBytes.appendString(schema, into: &event)
        JSONBytes.appendRaw(",\"table\":", into: &event)
        JSONBytes.appendString(table, into: &event)
        JSONBytes.appendRaw("}}", into: &event)
        let rendered = event.withUnsafeBufferPointer { bytes in
            config.table.render(EventFields.scan(bytes, event: 0..<bytes.count), bytes)
        }
        return TargetTable.split(String(decoding: rendered, as: UTF8.self))
    }
}
