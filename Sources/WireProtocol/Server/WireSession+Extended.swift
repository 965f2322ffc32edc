import NIOCore

extension WireSession {
    /// Parse: the statement is parsed now; its table is looked up at Bind/Describe/Execute.
    func parse(_ name: String, _ sql: String, _ typeOIDs: [Int32], _ output: inout ByteBuffer) throws(WireError) {
        if !name.isEmpty, statements[name] != nil {
            throw WireError("42P05", "prepared statement \"\(name)\" already exists")
        }
        let parsed: [SQLStatement]
        if isCatalogQuery(sql) {
            parsed = [.empty]
        } else {
            parsed = try SQLParser.parse(sql)
        }
        guard parsed.count <= 1 else {
            throw .syntax("cannot insert multiple commands into a prepared statement")
        }
        let statement = parsed.first
        let count = max(statement?.parameterCount ?? 0, typeOIDs.count)
        var types = [SQLType](repeating: .text, count: count)
        for (index, oid) in typeOIDs.enumerated() {
            types[index] = SQLType.byOID[oid] ?? .text
        }
        statements[name] = PreparedStatement(sql: sql, statement: statement, parameterTypes: types)
        output.writeEmpty("1")
    }

    func isCatalogQuery(_ sql: String) -> Bool { CatalogQueries.isCatalogQuery(sql) }

    func bind(
        _ portalName: String, _ statementName: String, _ formats: [Int16], _ values: [ByteBuffer?],
        _ resultFormats: [Int16], _ output: inout ByteBuffer
    ) throws(WireError) {
        guard let statement = statements[statementName] else {
            throw WireError(
                "26000",
                statementName.isEmpty
                    ? "unnamed prepared statement does not exist"
                    : "prepared statement \"\(statementName)\" does not exist")
        }
        if status == .failed, !(statement.statement?.endsTransaction ?? false) {
            try checkNotFailed()
        }
        guard values.count == statement.parameterTypes.count || statement.parameterTypes.isEmpty && values.isEmpty
        else {
            throw WireError(
                "08P01",
                "bind message supplies \(values.count) parameters, but prepared statement \"\(statementName)\" requires \(statement.parameterTypes.count)"
            )
        }
        guard formats.allSatisfy({ $0 == 0 }), resultFormats.allSatisfy({ $0 == 0 }) else {
            throw WireError("0A000", "binary format is not supported by pgbridge: use text format")
        }
        if !portalName.isEmpty, portals[portalName] != nil {
            throw WireError("42P03", "portal \"\(portalName)\" already exists")
        }
        var parameters: [SQLValue] = []
        for (index, value) in values.enumerated() {
            guard let value else {
                parameters.append(.null)
                continue
            }
            guard let text = String(validating: value.readableBytesView, as: UTF8.self) else {
                throw WireError("22021", "invalid byte sequence for encoding \"UTF8\" in parameter $\(index + 1)")
            }
            let type = statement.parameterTypes[index]
            parameters.append(type == .text ? .text(text) : try SQLValue.parse(text, as: type))
        }
        portals[portalName] = Portal(statement: statement, parameters: parameters, execution: nil)
        output.writeEmpty("2")
    }

    func describe(_ kind: UInt8, _ name: String, _ output: inout ByteBuffer) async throws {
        if kind == UInt8(ascii: "S") {
            guard let statement = statements[name] else {
                throw WireError("26000", "prepared statement \"\(name)\" does not exist")
            }
            output.writeParameterDescription(statement.parameterTypes)
            let placeholders = [SQLValue](repeating: .null, count: statement.parameterTypes.count)
            if let columns = try await resultColumns(statement, parameters: placeholders) {
                output.writeRowDescription(columns)
            } else {
                output.writeEmpty("n")
            }
            return
        }
        guard var portal = portals[name] else { throw WireError("34000", "portal \"\(name)\" does not exist") }
        if portal.execution == nil, portal.statement.statement?.returnsRowsWithoutSideEffects ?? false {
            portal.execution = try await start(portal, output: &output)
            portals[name] = portal
        }
        if case .rows(let columns, _, _) = portal.execution {
            output.writeRowDescription(columns)
        } else if let columns = try await resultColumns(portal.statement, parameters: portal.parameters) {
            output.writeRowDescription(columns)
        } else {
            output.writeEmpty("n")
        }
    }

    func execute(_ name: String, _ maxRows: Int32, _ output: inout ByteBuffer) async throws {
        guard var portal = portals[name] else { throw WireError("34000", "portal \"\(name)\" does not exist") }
        if portal.execution == nil {
            portal.execution = try await start(portal, output: &output)
            portals[name] = portal
        }
        switch portal.execution {
        case .rows(let columns, let source, let tag):
            let limit = maxRows > 0 ? Int(maxRows) : nil
            var count = 0
            do {
                while true {
                    let part = min(limit.map { $0 - count } ?? 1_000, 1_000)
                    let rows = try await source.fetch(part)
                    output.writeRows(rows)
                    count += rows.count
                    try await flushIfLarge(&output)
                    if rows.count < part || count == limit { break }
                }
            } catch {
                await source.close()
                portals[name]?.execution = .done(tag: tag)
                throw error
            }
            if let limit, count == limit {
                output.writeEmpty("s")  // PortalSuspended
                return
            }
            await source.close()
            _ = columns
            let completed = Self.tag(tag, count: source.sent)
            portals[name]?.execution = .done(tag: completed)
            output.writeCommandComplete(completed)
        case .done(let tag):
            output.writeCommandComplete(tag)
        case .empty:
            output.writeEmpty("I")
        case nil:
            break
        }
    }

    /// Runs the portal's statement (for row results: starts it; rows come with Execute).
    private func start(_ portal: Portal, output: inout ByteBuffer) async throws -> PortalExecution {
        if portal.statement.statement == .empty, isCatalogQuery(portal.statement.sql) {
            try checkNotFailed()
            guard let result = try await CatalogQueries.answer(portal.statement.sql, catalog: catalog) else {
                throw WireError("42P01", "pgbridge does not serve this catalog query")
            }
            return .rows(columns: result.columns, source: RowSource(rows: result.rows), tag: "SELECT")
        }
        guard let statement = portal.statement.statement else { return .empty }
        switch try await run(statement, parameters: portal.parameters, output: &output) {
        case .rows(let columns, let source, let tag):
            return .rows(columns: columns, source: source, tag: tag)
        case .command(let tag):
            return .done(tag: tag)
        }
    }

    /// The columns a statement returns, without running it (nil: no rows).
    private func resultColumns(_ prepared: PreparedStatement, parameters: [SQLValue]) async throws -> [ResultColumn]? {
        if prepared.statement == .empty, isCatalogQuery(prepared.sql) {
            return try await CatalogQueries.answer(prepared.sql, catalog: catalog)?.columns
        }
        switch prepared.statement {
        case .select(let select):
            return try await SelectExecution.start(
                select, catalog: catalog, parameters: parameters, scan: false
            ).resultColumns
        case .explain: return [ResultColumn("QUERY PLAN", .text)]
        case .show(let name): return [ResultColumn(name, .text)]
        case .fetch(let name, _):
            guard let cursor = cursors[name] else { throw WireError("34000", "cursor \"\(name)\" does not exist") }
            return cursor.execution.resultColumns
        case .insert(let insert) where !insert.returning.isEmpty:
            let table = try await SelectExecution.resolve(insert.table, catalog: catalog)
            return insert.returning.flatMap { target -> [ResultColumn] in
                if target.expression == .star { return table.columns.map { ResultColumn($0.name, $0.type) } }
                return [
                    ResultColumn(
                        target.alias ?? SelectExecution.defaultName(target.expression),
                        SelectExecution.staticType(target.expression, table.columns))
                ]
            }
        default: return nil
        }
    }
}

extension SQLStatement {
    var endsTransaction: Bool {
        switch self {
        case .commit, .rollback, .rollbackToSavepoint: true
        default: false
        }
    }

    /// Statements whose rows Describe may start producing (reads only).
    var returnsRowsWithoutSideEffects: Bool {
        switch self {
        case .select, .explain, .show: true
        default: false
        }
    }
}

extension SQLType {
    static let byOID: [Int32: SQLType] = {
        let all: [SQLType] = [
            .bool, .int2, .int4, .int8, .float8, .numeric, .text, .name, .char, .oid, .jsonb, .json, .timestamptz,
            .pgLSN, .regclass,
        ]
        var map: [Int32: SQLType] = [:]
        for type in all {
            map[type.oid] = type
            map[SQLType.array(type).oid] = .array(type)
        }
        map[1043] = .text  // varchar
        map[700] = .float8  // float4
        map[1114] = .timestamptz  // timestamp
        map[705] = .text  // unknown
        return map
    }()
}
