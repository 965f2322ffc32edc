/// Aggregate queries: the groups and their accumulators, and the analysis that finds the
/// aggregate calls of a select list and replaces them by their results.
extension SelectExecution {
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
        var found: String?
        expression.visit { node in
            guard found == nil, !groupTerms.contains(node) else { return false }
            switch node {
            case .column(let name):
                found = name
                return false
            case .function(let name, _, _, _):
                return !SQLEvaluator.aggregates.contains(SQLEvaluator.bareName(name))
            default:
                return true
            }
        }
        return found
    }

    static func containsAggregate(_ expression: SQLExpression) -> Bool {
        var calls: [SQLExpression] = []
        collectAggregates(expression, into: &calls)
        return !calls.isEmpty
    }

    static func collectAggregates(_ expression: SQLExpression, into calls: inout [SQLExpression]) {
        expression.visit { node in
            guard case .function(let name, _, _, _) = node,
                SQLEvaluator.aggregates.contains(SQLEvaluator.bareName(name))
            else { return true }
            if !calls.contains(node) { calls.append(node) }
            return false
        }
    }

    static func substitute(_ expression: SQLExpression, _ calls: [SQLExpression], _ results: [SQLValue])
        -> SQLExpression
    {
        expression.rewritten { node in calls.firstIndex(of: node).map { .constant(results[$0]) } }
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
}
