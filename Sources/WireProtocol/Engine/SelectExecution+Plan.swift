/// What a SELECT asks of its table before any row is read: positions and aliases resolved, and
/// the conditions a scan can use (column bounds, LIMIT) pushed into the `ScanRequest`.
extension SelectExecution {
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
        expression.visit { node in
            if case .column(let name) = node { columns.insert(name) }
            return true
        }
    }

    /// The `'s.t'` arguments of `pg_relation_size('s.t'::regclass)` calls (ANALYZE's size query).
    static func relationSizeArguments(_ select: SelectStatement) -> [String] {
        var names: [String] = []
        for target in select.targets {
            target.expression.visit { node in
                if case .function(let name, let arguments, _, _) = node,
                    SQLEvaluator.bareName(name) == "pg_relation_size", var inner = arguments.first
                {
                    while case .cast(let value, _) = inner { inner = value }
                    if case .untypedString(let text) = inner { names.append(text) }
                }
                return true
            }
        }
        return names
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
