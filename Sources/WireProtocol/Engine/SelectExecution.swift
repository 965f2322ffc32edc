import Foundation

/// A SELECT being run: the scan of its table, the WHERE filter, then either streaming
/// (OFFSET/LIMIT counted on the way) or, with ORDER BY or aggregates, all rows first.
final class SelectExecution {
    // The plan (+Plan), aggregation (+Aggregate) and result types (+Types) live in extensions;
    // the statement's parts they read are the constants below.
    let resultColumns: [ResultColumn]
    let select: SelectStatement
    let table: (any ForeignTable)?
    let evaluator: SQLEvaluator
    let targets: [SQLExpression]
    let isAggregate: Bool
    let limit: Int?
    let offset: Int
    private var scan: (any ForeignScan)?
    private var pending: [[SQLValue]] = []
    private var pendingIndex = 0
    private var skipped = 0
    private var produced = 0
    private var sourceDone = false
    private var materialized = false
    private(set) var rowsSent = 0
    /// The most bytes of rows `materialize` keeps (ORDER BY without aggregates).
    var maxBytes = 256 << 20
    /// Set by the session: true once a CancelRequest named it.
    var isCancelled: () -> Bool = { false }

    /// Checks the statement against the catalog (tables, columns, what can be evaluated) and
    /// starts the scan.
    static func start(
        _ select: SelectStatement, catalog: any ForeignCatalog, parameters: [SQLValue], scan: Bool = true,
        maxBytes: Int = 256 << 20
    ) async throws -> SelectExecution {
        var table: (any ForeignTable)?
        if let name = select.from {
            table = try await resolve(name, catalog: catalog)
        }
        var sizes: [String: Int64] = [:]
        for name in relationSizeArguments(select) {
            if let sized = try? await resolve(TableName.parse(name), catalog: catalog) {
                sizes[name] = Int64(max(1, await sized.estimatedRows() / 80)) * 8192
            }
        }
        let execution = try SelectExecution(select, table: table, parameters: parameters, sizes: sizes)
        execution.maxBytes = maxBytes
        if let table, scan {
            execution.scan = try await table.scan(execution.scanRequest())
        }
        return execution
    }

    static func resolve(_ name: TableName, catalog: any ForeignCatalog) async throws(WireError) -> any ForeignTable {
        guard let schema = name.schema else {
            throw WireError(
                "42P01", "relation \"\(name.name)\" does not exist",
                hint: "qualify the table with its schema: \(catalog.schemas.joined(separator: ", "))")
        }
        guard let table = await catalog.table(name) else {
            let known = await catalog.tables(in: schema).map(\.name.name).sorted()
            let hint =
                catalog.schemas.contains(schema)
                ? (known.isEmpty
                    ? "schema \(schema) has no tables: configure them in the wire section of pgbridge's config"
                    : "tables in \(schema): \(known.prefix(20).joined(separator: ", "))")
                : "pgbridge's schemas are \(catalog.schemas.joined(separator: ", "))"
            throw WireError("42P01", "relation \"\(name)\" does not exist", hint: hint)
        }
        return table
    }

    private init(
        _ select: SelectStatement, table: (any ForeignTable)?, parameters: [SQLValue], sizes: [String: Int64]
    ) throws(WireError) {
        self.select = select
        self.table = table
        let columns = table?.columns ?? []
        var evaluator = SQLEvaluator(
            columns: table?.columnIndex() ?? [:], columnTypes: columns.map(\.type), parameters: parameters)
        evaluator.relationSize = { sizes[$0] }
        self.evaluator = evaluator

        var targets: [SQLExpression] = []
        var names: [String] = []
        for target in select.targets {
            if target.expression == .star {
                guard table != nil else { throw .syntax("SELECT * with no table specified is not valid") }
                for column in columns {
                    targets.append(.column(column.name))
                    names.append(column.name)
                }
            } else {
                targets.append(target.expression)
                names.append(target.alias ?? Self.defaultName(target.expression))
            }
        }
        guard targets.count <= 1664 else {
            throw WireError("54011", "target lists can have at most 1664 entries")
        }
        self.targets = targets
        isAggregate = !select.groupBy.isEmpty || targets.contains { Self.containsAggregate($0) }
        for target in targets { try evaluator.check(target, allowAggregates: true) }
        if let condition = select.whereClause { try evaluator.check(condition) }
        for term in select.groupBy { try evaluator.check(Self.resolvePosition(term, targets)) }
        for term in select.orderBy {
            try evaluator.check(
                Self.resolveOrder(term.expression, targets, select.targets), allowAggregates: isAggregate)
        }
        if isAggregate {
            let groupTerms = select.groupBy.map { Self.resolvePosition($0, targets) }
            let ordered = select.orderBy.map { Self.resolveOrder($0.expression, targets, select.targets) }
            for expression in targets + ordered {
                if let column = Self.ungroupedColumn(expression, groupTerms) {
                    throw WireError(
                        "42803",
                        "column \"\(column)\" must appear in the GROUP BY clause or be used in an aggregate function")
                }
            }
        }
        resultColumns = zip(names, targets).map { ResultColumn($0, Self.staticType($1, columns)) }
        limit = try select.limit.map { expression throws(WireError) in try Self.count(expression, evaluator, "LIMIT") }
        offset =
            try select.offset.map { expression throws(WireError) in try Self.count(expression, evaluator, "OFFSET") }
            ?? 0
    }

    private static func count(_ expression: SQLExpression, _ evaluator: SQLEvaluator, _ clause: String)
        throws(WireError) -> Int
    {
        var columns: Set<String> = []
        collectColumns(expression, into: &columns)
        guard columns.isEmpty else { throw WireError("42P10", "argument of \(clause) must not contain variables") }
        try evaluator.check(expression)
        switch try evaluator.evaluate(expression, row: []).cast(to: .int8) {
        case .int(let value) where value >= 0: return Int(value)
        case .null: return Int.max
        default: throw WireError("2201W", "\(clause) must not be negative")
        }
    }

    /// Fetches up to `count` result rows (nil = all); fewer means the result is complete.
    func fetch(_ count: Int?) async throws -> [[SQLValue]] {
        let wanted = count ?? Int.max
        var rows: [[SQLValue]] = []
        while rows.count < wanted {
            if pendingIndex < pending.count {
                let take = min(wanted - rows.count, pending.count - pendingIndex)
                rows.append(contentsOf: pending[pendingIndex..<pendingIndex + take])
                pendingIndex += take
                continue
            }
            pending.removeAll(keepingCapacity: true)
            pendingIndex = 0
            if sourceDone { break }
            try checkCancelled()
            if isAggregate || !select.orderBy.isEmpty {
                try await materialize()
            } else {
                try await stream()
            }
        }
        rowsSent += rows.count
        return rows
    }

    private func checkCancelled() throws {
        try Task.checkCancellation()
        if isCancelled() { throw WireError("57014", "canceling statement due to user request") }
    }

    func close() async {
        if let scan {
            self.scan = nil
            await scan.close()
        }
    }

    private func nextSourceBatch() async throws -> [[SQLValue]]? {
        guard let scan else {
            // No FROM: one row of constants.
            if materialized { return nil }
            materialized = true
            return [[]]
        }
        return try await scan.next()
    }

    private func stream() async throws {
        guard let batch = try await nextSourceBatch() else {
            await finishSource()
            return
        }
        for row in batch {
            if let condition = select.whereClause, !(try evaluator.holds(condition, row: row)) { continue }
            if skipped < offset {
                skipped += 1
                continue
            }
            if let limit, produced >= limit { break }
            pending.append(try project(row))
            produced += 1
        }
        if let limit, produced >= limit { await finishSource() }
    }

    private func finishSource() async {
        sourceDone = true
        await close()
    }

    private func materialize() async throws {
        // Aggregates are accumulated as rows arrive; only ORDER BY without them keeps every row.
        var rows: [[SQLValue]] = []
        var bytes = 0
        var aggregation = isAggregate ? Aggregation(self) : nil
        while let batch = try await nextSourceBatch() {
            try checkCancelled()
            for row in batch {
                if let condition = select.whereClause, !(try evaluator.holds(condition, row: row)) { continue }
                if aggregation != nil {
                    try aggregation!.add(row, evaluator)
                } else {
                    bytes += row.reduce(16) { $0 + $1.approximateBytes }
                    if bytes > maxBytes {
                        await finishSource()
                        throw WireError(
                            "54000", "the rows to sort passed wire.max_scan_bytes (\(maxBytes) bytes)",
                            hint: "add a condition or a LIMIT without ORDER BY, or raise wire.max_scan_bytes")
                    }
                    rows.append(row)
                }
            }
        }
        await finishSource()
        var output: [(sortKey: [SQLValue], row: [SQLValue])]
        if let aggregation {
            output = try aggregation.finish(evaluator)
        } else {
            let order = select.orderBy.map { Self.resolveOrder($0.expression, targets, select.targets) }
            output = try rows.map { row throws(WireError) in
                (
                    try order.map { expression throws(WireError) in try evaluator.evaluate(expression, row: row) },
                    try project(row)
                )
            }
        }
        if !select.orderBy.isEmpty { try sort(&output) }
        let start = min(offset, output.count)
        let end = limit.map { $0 >= output.count - start ? output.count : start + $0 } ?? output.count
        pending = output[start..<end].map(\.row)
    }

    private func sort(_ output: inout [(sortKey: [SQLValue], row: [SQLValue])]) throws(WireError) {
        let terms = select.orderBy
        var failure: WireError?
        output.sort { a, b in
            for (index, term) in terms.enumerated() {
                let x = a.sortKey[index]
                let y = b.sortKey[index]
                if x.isNull || y.isNull {
                    if x.isNull && y.isNull { continue }
                    return x.isNull == term.nullsFirst
                }
                do {
                    let order = try SQLValue.compare(x, y)
                    if order != 0 { return term.descending ? order > 0 : order < 0 }
                } catch let error as WireError {
                    failure = error
                    return false
                } catch {
                    return false
                }
            }
            return false
        }
        if let failure { throw failure }
    }

    private func project(_ row: [SQLValue]) throws(WireError) -> [SQLValue] {
        var values: [SQLValue] = []
        values.reserveCapacity(targets.count)
        for target in targets { values.append(try evaluator.evaluate(target, row: row)) }
        return values
    }
}
