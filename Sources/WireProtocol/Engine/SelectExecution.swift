import Foundation

/// A SELECT being run: the scan of its table, the WHERE filter, then either streaming
/// (OFFSET/LIMIT counted on the way) or, with ORDER BY or aggregates, all rows first.
final class SelectExecution {
    let resultColumns: [ResultColumn]
    private let select: SelectStatement
    private let table: (any ForeignTable)?
    private let evaluator: SQLEvaluator
    private let targets: [SQLExpression]
    private let isAggregate: Bool
    private let limit: Int?
    private let offset: Int
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

    // MARK: - Aggregates

    /// The groups of an aggregate query and their accumulators, fed one row at a time.
    struct Aggregation {
        let groupTerms: [SQLExpression]
        let orderTerms: [SQLExpression]
        let targets: [SQLExpression]
        var calls: [SQLExpression] = []
        var groups: [String: Int] = [:]
        var states: [(representative: [SQLValue], accumulators: [Accumulator])] = []

        init(_ execution: SelectExecution) {
            let select = execution.select
            targets = execution.targets
            groupTerms = select.groupBy.map { SelectExecution.resolvePosition($0, execution.targets) }
            orderTerms = select.orderBy.map {
                SelectExecution.resolveOrder($0.expression, execution.targets, select.targets)
            }
            for expression in targets + orderTerms { SelectExecution.collectAggregates(expression, into: &calls) }
        }

        mutating func add(_ row: [SQLValue], _ evaluator: SQLEvaluator) throws(WireError) {
            var key = ""
            for term in groupTerms {
                let value = try evaluator.evaluate(term, row: row)
                key += (value.text.map { "v" + $0 } ?? "n") + "\u{0}"
            }
            let index: Int
            if let existing = groups[key] {
                index = existing
            } else {
                index = states.count
                groups[key] = index
                states.append((row, calls.map { Accumulator(call: $0) }))
            }
            for position in calls.indices {
                try states[index].accumulators[position].add(row, evaluator)
            }
        }

        func finish(_ evaluator: SQLEvaluator) throws(WireError) -> [(sortKey: [SQLValue], row: [SQLValue])] {
            var states = states
            if states.isEmpty, groupTerms.isEmpty {
                states.append(([], calls.map { Accumulator(call: $0) }))
            }
            return try states.map { state throws(WireError) in
                let results = state.accumulators.map(\.result)
                func value(_ expression: SQLExpression) throws(WireError) -> SQLValue {
                    let substituted = SelectExecution.substitute(expression, calls, results)
                    return try evaluator.evaluate(substituted, row: state.representative)
                }
                var row: [SQLValue] = []
                for target in targets { row.append(try value(target)) }
                var key: [SQLValue] = []
                for term in orderTerms { key.append(try value(term)) }
                return (key, row)
            }
        }
    }

    /// A column used outside the aggregates and the GROUP BY terms, if any.
    static func ungroupedColumn(_ expression: SQLExpression, _ groupTerms: [SQLExpression]) -> String? {
        if groupTerms.contains(expression) { return nil }
        switch expression {
        case .column(let name): return name
        case .function(let name, let arguments, _, _):
            if SQLEvaluator.aggregates.contains(SQLEvaluator.bareName(name)) { return nil }
            return arguments.lazy.compactMap { ungroupedColumn($0, groupTerms) }.first
        case .cast(let inner, _), .not(let inner), .negate(let inner), .isNull(let inner, _):
            return ungroupedColumn(inner, groupTerms)
        case .binary(_, let a, let b), .quantified(_, let a, _, let b):
            return ungroupedColumn(a, groupTerms) ?? ungroupedColumn(b, groupTerms)
        case .inList(let a, let list, _):
            return ungroupedColumn(a, groupTerms) ?? list.lazy.compactMap { ungroupedColumn($0, groupTerms) }.first
        case .array(let list):
            return list.lazy.compactMap { ungroupedColumn($0, groupTerms) }.first
        case .constant, .untypedString, .parameter, .star: return nil
        }
    }

    static func containsAggregate(_ expression: SQLExpression) -> Bool {
        var calls: [SQLExpression] = []
        collectAggregates(expression, into: &calls)
        return !calls.isEmpty
    }

    static func collectAggregates(_ expression: SQLExpression, into calls: inout [SQLExpression]) {
        switch expression {
        case .function(let name, let arguments, _, _):
            if SQLEvaluator.aggregates.contains(SQLEvaluator.bareName(name)) {
                if !calls.contains(expression) { calls.append(expression) }
            } else {
                for argument in arguments { collectAggregates(argument, into: &calls) }
            }
        case .cast(let inner, _), .not(let inner), .negate(let inner), .isNull(let inner, _):
            collectAggregates(inner, into: &calls)
        case .binary(_, let a, let b), .quantified(_, let a, _, let b):
            collectAggregates(a, into: &calls)
            collectAggregates(b, into: &calls)
        case .inList(let a, let list, _):
            collectAggregates(a, into: &calls)
            for item in list { collectAggregates(item, into: &calls) }
        case .array(let list):
            for item in list { collectAggregates(item, into: &calls) }
        case .column, .constant, .untypedString, .parameter, .star: break
        }
    }

    static func substitute(_ expression: SQLExpression, _ calls: [SQLExpression], _ results: [SQLValue])
        -> SQLExpression
    {
        if let index = calls.firstIndex(of: expression) { return .constant(results[index]) }
        switch expression {
        case .function(let name, let arguments, let star, let distinct):
            return .function(name, arguments.map { substitute($0, calls, results) }, star: star, distinct: distinct)
        case .cast(let inner, let type): return .cast(substitute(inner, calls, results), type)
        case .not(let inner): return .not(substitute(inner, calls, results))
        case .negate(let inner): return .negate(substitute(inner, calls, results))
        case .isNull(let inner, let negated): return .isNull(substitute(inner, calls, results), negated: negated)
        case .binary(let op, let a, let b):
            return .binary(op, substitute(a, calls, results), substitute(b, calls, results))
        default: return expression
        }
    }

    struct Accumulator {
        let call: SQLExpression
        var count: Int64 = 0
        var intSum: Int64 = 0
        var doubleSum: Double = 0
        var sawDouble = false
        var best: SQLValue = .null

        init(call: SQLExpression) { self.call = call }

        mutating func add(_ row: [SQLValue], _ evaluator: SQLEvaluator) throws(WireError) {
            guard case .function(let rawName, let arguments, let star, _) = call else { return }
            let name = SQLEvaluator.bareName(rawName)
            if star {
                count += 1
                return
            }
            let value = try evaluator.evaluate(arguments[0], row: row)
            if value.isNull { return }
            count += 1
            switch name {
            case "sum", "avg":
                switch try SQLEvaluator.numeric(value) {
                case .int(let number):
                    let (sum, overflow) = intSum.addingReportingOverflow(number)
                    if overflow { sawDouble = true }
                    intSum = sum
                    doubleSum += Double(number)
                case let other:
                    sawDouble = true
                    doubleSum += other.doubleValue
                }
            case "min", "max":
                if best.isNull {
                    best = value
                } else {
                    let order = try SQLValue.compare(value, best)
                    if name == "min" ? order < 0 : order > 0 { best = value }
                }
            default: break
            }
        }

        var result: SQLValue {
            guard case .function(let rawName, _, _, _) = call else { return .null }
            switch SQLEvaluator.bareName(rawName) {
            case "count": return .int(count)
            case "sum": return count == 0 ? .null : (sawDouble ? .double(doubleSum) : .int(intSum))
            case "avg": return count == 0 ? .null : .double(doubleSum / Double(count))
            default: return best
            }
        }
    }

    // MARK: - Static analysis

    /// `GROUP BY 1` / `ORDER BY 1` name a select-list position.
    static func resolvePosition(_ expression: SQLExpression, _ targets: [SQLExpression]) -> SQLExpression {
        if case .constant(.int(let position)) = expression, position >= 1, position <= targets.count {
            return targets[Int(position) - 1]
        }
        return expression
    }

    static func resolveOrder(_ expression: SQLExpression, _ targets: [SQLExpression], _ written: [SelectTarget])
        -> SQLExpression
    {
        if case .column(let name) = expression, let index = written.firstIndex(where: { $0.alias == name }),
            index < targets.count, targets[index] != expression
        {
            return targets[index]
        }
        return resolvePosition(expression, targets)
    }

    func scanRequest() -> ScanRequest {
        var request = ScanRequest()
        var used: Set<String> = []
        for target in targets { Self.collectColumns(target, into: &used) }
        if let condition = select.whereClause { Self.collectColumns(condition, into: &used) }
        for term in select.orderBy { Self.collectColumns(term.expression, into: &used) }
        for term in select.groupBy { Self.collectColumns(term, into: &used) }
        request.columns = used
        if let limit, select.whereClause == nil, select.orderBy.isEmpty, !isAggregate {
            let (sum, overflow) = limit.addingReportingOverflow(offset)
            request.rowLimit = overflow ? nil : sum
        }
        guard let condition = select.whereClause, let table else { return request }
        let types = Dictionary(uniqueKeysWithValues: table.columns.map { ($0.name, $0.type) })
        var terms: [SQLExpression] = []
        Self.conjuncts(condition, into: &terms)
        func constant(_ expression: SQLExpression, as type: SQLType) -> SQLValue? {
            var columns: Set<String> = []
            Self.collectColumns(expression, into: &columns)
            guard columns.isEmpty, !Self.containsAggregate(expression),
                let value = try? evaluator.evaluate(expression, row: []), !value.isNull
            else { return nil }
            if type == .text { return value }
            // Only a value the column type holds exactly: `"offset" > 1.5` must not become `> 2`.
            guard let cast = try? value.cast(to: type), (try? SQLValue.compare(cast, value)) == 0 else { return nil }
            return cast
        }
        for term in terms {
            switch term {
            case .binary(let op, let left, let right) where ["=", "<", "<=", ">", ">="].contains(op):
                var column: String
                var other: SQLExpression
                var op = op
                if case .column(let name) = left {
                    (column, other) = (name, right)
                } else if case .column(let name) = right {
                    (column, other) = (name, left)
                    op = ["<": ">", "<=": ">=", ">": "<", ">=": "<="][op] ?? op
                } else {
                    continue
                }
                guard let type = types[column], let value = constant(other, as: type) else { continue }
                var bounds = request.bounds[column] ?? ColumnBounds()
                switch op {
                case "=": bounds.values = [value]
                case ">", ">=": bounds.tighten(lower: value, inclusive: op == ">=")
                default: bounds.tighten(upper: value, inclusive: op == "<=")
                }
                request.bounds[column] = bounds
            case .quantified("=", .column(let column), false, let list):
                guard let type = types[column], let value = constant(list, as: .array(type)),
                    case .array(let values) = value
                else { continue }
                request.bounds[column, default: ColumnBounds()].values = values
            case .inList(.column(let column), let list, false):
                guard let type = types[column] else { continue }
                let values = list.compactMap { constant($0, as: type) }
                if values.count == list.count { request.bounds[column, default: ColumnBounds()].values = values }
            default: continue
            }
        }
        return request
    }

    static func conjuncts(_ expression: SQLExpression, into terms: inout [SQLExpression]) {
        if case .binary("and", let a, let b) = expression {
            conjuncts(a, into: &terms)
            conjuncts(b, into: &terms)
        } else {
            terms.append(expression)
        }
    }

    static func collectColumns(_ expression: SQLExpression, into columns: inout Set<String>) {
        switch expression {
        case .column(let name): columns.insert(name)
        case .cast(let inner, _), .not(let inner), .negate(let inner), .isNull(let inner, _):
            collectColumns(inner, into: &columns)
        case .binary(_, let a, let b), .quantified(_, let a, _, let b):
            collectColumns(a, into: &columns)
            collectColumns(b, into: &columns)
        case .inList(let a, let list, _):
            collectColumns(a, into: &columns)
            for item in list { collectColumns(item, into: &columns) }
        case .array(let list), .function(_, let list, _, _):
            for item in list { collectColumns(item, into: &columns) }
        case .constant, .untypedString, .parameter, .star: break
        }
    }

    /// The `'s.t'` arguments of `pg_relation_size('s.t'::regclass)` calls (ANALYZE's size query).
    static func relationSizeArguments(_ select: SelectStatement) -> [String] {
        var names: [String] = []
        func visit(_ expression: SQLExpression) {
            switch expression {
            case .function(let name, let arguments, _, _):
                if SQLEvaluator.bareName(name) == "pg_relation_size", let first = arguments.first {
                    var inner = first
                    while case .cast(let value, _) = inner { inner = value }
                    if case .untypedString(let text) = inner { names.append(text) }
                }
                arguments.forEach(visit)
            case .binary(_, let a, let b):
                visit(a)
                visit(b)
            case .cast(let inner, _): visit(inner)
            default: break
            }
        }
        select.targets.forEach { visit($0.expression) }
        return names
    }

    static func defaultName(_ expression: SQLExpression) -> String {
        switch expression {
        case .column(let name): return name
        case .function(let name, _, _, _): return SQLEvaluator.bareName(name)
        case .cast(let inner, let type):
            let name = defaultName(inner)
            return name == "?column?" ? "\(type)" : name
        default: return "?column?"
        }
    }

    static func staticType(_ expression: SQLExpression, _ columns: [ForeignColumn]) -> SQLType {
        switch expression {
        case .column(let name): return columns.first { $0.name == name }?.type ?? .text
        case .constant(let value):
            if case .int(let number) = value, Int32(exactly: number) != nil { return .int4 }
            return value.isNull ? .text : value.type
        case .untypedString, .parameter: return .text
        case .cast(_, let type): return type
        case .not, .isNull, .quantified, .inList: return .bool
        case .negate(let inner): return staticType(inner, columns)
        case .binary(let op, let a, let b):
            switch op {
            case "->", "#>": return .jsonb
            case "->>", "#>>", "||": return .text
            case "+", "-", "*", "/", "%":
                let types = [staticType(a, columns), staticType(b, columns)]
                return types.contains { $0 == .numeric || $0 == .float8 } ? .numeric : .int8
            default: return .bool
            }
        case .array(let list): return .array(list.first.map { staticType($0, columns) } ?? .text)
        case .function(let name, let arguments, _, _):
            switch SQLEvaluator.bareName(name) {
            case "count", "pg_relation_size": return .int8
            case "sum":
                let type = arguments.first.map { staticType($0, columns) } ?? .int8
                return type == .numeric || type == .float8 ? .numeric : .int8
            case "avg": return .numeric
            case "length", "char_length": return .int4
            case "starts_with": return .bool
            case "min", "max", "coalesce", "abs", "nullif", "greatest", "least":
                return arguments.first.map { staticType($0, columns) } ?? .text
            case "jsonb_extract_path": return .jsonb
            default: return .text
            }
        case .star: return .text
        }
    }
}

extension ColumnBounds {
    mutating func tighten(lower value: SQLValue, inclusive: Bool) {
        if let current = lower, let order = try? SQLValue.compare(value, current), order < 0 { return }
        if let current = lower, (try? SQLValue.compare(value, current)) == 0, lowerInclusive, !inclusive {
            lowerInclusive = false
            return
        }
        lower = value
        lowerInclusive = inclusive
    }

    mutating func tighten(upper value: SQLValue, inclusive: Bool) {
        if let current = upper, let order = try? SQLValue.compare(value, current), order > 0 { return }
        if let current = upper, (try? SQLValue.compare(value, current)) == 0, upperInclusive, !inclusive {
            upperInclusive = false
            return
        }
        upper = value
        upperInclusive = inclusive
    }
}

extension TableName {
    /// `schema.table` (as `'kafka.events'::regclass` spells it), quotes removed.
    static func parse(_ text: String) -> TableName {
        let parts = text.split(separator: ".", maxSplits: 1).map {
            $0.hasPrefix("\"") && $0.hasSuffix("\"") && $0.count >= 2
                ? $0.dropFirst().dropLast().replacingOccurrences(of: "\"\"", with: "\"")
                : $0.lowercased()
        }
        return parts.count == 2 ? TableName(schema: parts[0], name: parts[1]) : TableName(schema: nil, name: parts[0])
    }
}
