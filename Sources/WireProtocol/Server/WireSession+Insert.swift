extension WireSession {
    /// INSERT: values are cast to the columns' types, the table writes them (produce, XADD,
    /// publish) and confirms before the command completes.
    func insert(_ insert: InsertStatement, parameters: [SQLValue]) async throws -> StatementResult {
        let table = try await SelectExecution.resolve(insert.table, catalog: catalog)
        guard catalog.canWrite(table.name) else {
            throw WireError(
                "42501", "permission denied for table \(table.name)",
                hint: "user \(user) may read it but not insert into it: grant it in wire.users.\(user).write")
        }
        let types = Dictionary(uniqueKeysWithValues: table.columns.map { ($0.name, $0.type) })
        let columns = insert.columns.isEmpty ? table.columns.map(\.name) : insert.columns
        for column in columns where types[column] == nil {
            throw WireError("42703", "column \"\(column)\" of relation \"\(insert.table)\" does not exist")
        }
        if Set(columns).count != columns.count {
            throw WireError("42701", "a column is specified more than once in INSERT")
        }
        let evaluator = SQLEvaluator(columns: [:], columnTypes: [], parameters: parameters)
        var rows: [[String: SQLValue]] = []
        for values in insert.rows {
            guard values.count <= columns.count else {
                throw WireError("42601", "INSERT has more expressions than target columns")
            }
            guard values.count == columns.count else {
                throw WireError("42601", "INSERT has more target columns than expressions")
            }
            var row: [String: SQLValue] = [:]
            for (column, expression) in zip(columns, values) {
                try evaluator.check(expression)
                let value = try evaluator.evaluate(expression, row: [])
                row[column] = try value.cast(to: types[column]!)
            }
            rows.append(row)
        }
        var returningEvaluator: SQLEvaluator?
        var returningColumns: [ResultColumn] = []
        if !insert.returning.isEmpty {
            let evaluator = SQLEvaluator(
                columns: table.columnIndex(), columnTypes: table.columns.map(\.type), parameters: parameters)
            for target in insert.returning where target.expression != .star {
                try evaluator.check(target.expression)
            }
            returningEvaluator = evaluator
            returningColumns = returningTargets(insert, table).map {
                ResultColumn(
                    $0.alias ?? SelectExecution.defaultName($0.expression),
                    SelectExecution.staticType($0.expression, table.columns))
            }
        }
        try checkCancelled()
        let written = try await table.insert(rows)
        guard let returningEvaluator else {
            return .command("INSERT 0 \(written.count)")
        }
        var output: [[SQLValue]] = []
        for row in written {
            let values = table.columns.map { row[$0.name] ?? .null }
            output.append(
                try returningTargets(insert, table).map { target throws(WireError) in
                    try returningEvaluator.evaluate(target.expression, row: values)
                })
        }
        return .rows(columns: returningColumns, source: RowSource(rows: output), tag: "INSERT")
    }

    private func returningTargets(_ insert: InsertStatement, _ table: any ForeignTable) -> [SelectTarget] {
        insert.returning.flatMap { target in
            target.expression == .star
                ? table.columns.map { SelectTarget(expression: .column($0.name), alias: nil) } : [target]
        }
    }
}
