/// The one traversal of `SQLExpression`: every walker (parameters, columns, aggregates,
/// substitution, checks) goes through `children` and `mapChildren`, so a new case is handled in
/// one place and no walker can skip a case the others visit.
extension SQLExpression {
    /// The direct sub-expressions, in source order.
    public var children: [SQLExpression] {
        switch self {
        case .column, .constant, .untypedString, .parameter, .star: []
        case .cast(let inner, _), .not(let inner), .negate(let inner), .isNull(let inner, _): [inner]
        case .binary(_, let a, let b), .quantified(_, let a, _, let b): [a, b]
        case .inList(let a, let list, _): [a] + list
        case .array(let list), .function(_, let list, _, _): list
        }
    }

    /// This expression with each direct sub-expression replaced by `transform`'s answer.
    public func mapChildren<E: Error>(_ transform: (SQLExpression) throws(E) -> SQLExpression) throws(E)
        -> SQLExpression
    {
        switch self {
        case .column, .constant, .untypedString, .parameter, .star: return self
        case .cast(let inner, let type): return .cast(try transform(inner), type)
        case .not(let inner): return .not(try transform(inner))
        case .negate(let inner): return .negate(try transform(inner))
        case .isNull(let inner, let negated): return .isNull(try transform(inner), negated: negated)
        case .binary(let op, let a, let b): return .binary(op, try transform(a), try transform(b))
        case .quantified(let op, let a, let all, let b):
            return .quantified(op, try transform(a), all: all, try transform(b))
        case .inList(let a, let list, let negated):
            var items: [SQLExpression] = []
            for item in list { items.append(try transform(item)) }
            return .inList(try transform(a), items, negated: negated)
        case .array(let list):
            var items: [SQLExpression] = []
            for item in list { items.append(try transform(item)) }
            return .array(items)
        case .function(let name, let arguments, let star, let distinct):
            var items: [SQLExpression] = []
            for argument in arguments { items.append(try transform(argument)) }
            return .function(name, items, star: star, distinct: distinct)
        }
    }

    /// Visits this expression and its sub-expressions, parents first; when `visit` answers
    /// false, the expression's children are skipped.
    public func visit<E: Error>(_ visit: (SQLExpression) throws(E) -> Bool) throws(E) {
        guard try visit(self) else { return }
        for child in children { try child.visit(visit) }
    }

    /// This expression with every sub-expression for which `replacement` answers a value
    /// replaced by it (the replacement is not visited again); the others are rebuilt around
    /// their rewritten children.
    public func rewritten<E: Error>(_ replacement: (SQLExpression) throws(E) -> SQLExpression?) throws(E)
        -> SQLExpression
    {
        if let replaced = try replacement(self) { return replaced }
        return try mapChildren { (child) throws(E) -> SQLExpression in try child.rewritten(replacement) }
    }
}

extension SelectStatement {
    /// Every top-level expression of the statement: targets, WHERE, GROUP BY, ORDER BY, LIMIT
    /// and OFFSET.
    var expressions: [SQLExpression] {
        targets.map(\.expression) + [whereClause].compactMap { $0 } + groupBy + orderBy.map(\.expression)
            + [limit, offset].compactMap { $0 }
    }
}

extension InsertStatement {
    /// Every top-level expression of the statement: the values and the RETURNING list.
    var expressions: [SQLExpression] { rows.flatMap { $0 } + returning.map(\.expression) }
}
