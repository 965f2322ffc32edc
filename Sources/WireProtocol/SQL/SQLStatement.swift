/// An expression of the SQL subset.
public indirect enum SQLExpression: Sendable, Equatable {
    case column(String)
    case constant(SQLValue)
    /// A string literal without a cast: its type comes from where it is used.
    case untypedString(String)
    case parameter(Int)
    case cast(SQLExpression, SQLType)
    case not(SQLExpression)
    case negate(SQLExpression)
    /// `=`, `<>`, `<`, `<=`, `>`, `>=`, `and`, `or`, `~~` (LIKE), `!~~`, `~~*` (ILIKE), `!~~*`,
    /// `->`, `->>`, `||`, `+`, `-`, `*`, `/`, `%`.
    case binary(String, SQLExpression, SQLExpression)
    case isNull(SQLExpression, negated: Bool)
    /// `x op ANY (array)` (IN) or `x op ALL (array)` (NOT IN).
    case quantified(String, SQLExpression, all: Bool, SQLExpression)
    case inList(SQLExpression, [SQLExpression], negated: Bool)
    case array([SQLExpression])
    case function(String, [SQLExpression], star: Bool, distinct: Bool)
    case star
}

public struct SelectTarget: Sendable, Equatable {
    public var expression: SQLExpression
    public var alias: String?
}

public struct OrderTerm: Sendable, Equatable {
    public var expression: SQLExpression
    public var descending: Bool
    public var nullsFirst: Bool
}

public struct TableName: Sendable, Hashable, CustomStringConvertible {
    public var schema: String?
    public var name: String

    public init(schema: String?, name: String) {
        self.schema = schema
        self.name = name
    }

    public var description: String { schema.map { "\($0).\(name)" } ?? name }
}

public struct SelectStatement: Sendable, Equatable {
    public var targets: [SelectTarget] = []
    public var from: TableName?
    public var whereClause: SQLExpression?
    public var groupBy: [SQLExpression] = []
    public var orderBy: [OrderTerm] = []
    public var limit: SQLExpression?
    public var offset: SQLExpression?
}

public struct InsertStatement: Sendable, Equatable {
    public var table: TableName
    public var columns: [String]
    public var rows: [[SQLExpression]]
    public var returning: [SelectTarget]
}

/// A statement of the subset pgbridge serves.
public enum SQLStatement: Sendable, Equatable {
    case select(SelectStatement)
    case insert(InsertStatement)
    case explain(SelectStatement)
    case set
    case show(String)
    case reset
    case begin(tag: String)
    case commit
    case rollback
    case savepoint(String)
    case releaseSavepoint(String)
    case rollbackToSavepoint(String)
    case declareCursor(String, SelectStatement)
    /// nil count = ALL.
    case fetch(String, count: Int?)
    /// nil = ALL.
    case closeCursor(String?)
    case deallocate(String?)
    case discardAll
    case empty

    /// The highest `$n` the statement uses.
    var parameterCount: Int {
        var highest = 0
        func visit(_ expression: SQLExpression?) {
            guard let expression else { return }
            switch expression {
            case .parameter(let n): highest = max(highest, n)
            case .cast(let inner, _), .not(let inner), .negate(let inner), .isNull(let inner, _): visit(inner)
            case .binary(_, let a, let b), .quantified(_, let a, _, let b):
                visit(a)
                visit(b)
            case .inList(let a, let list, _):
                visit(a)
                list.forEach(visit)
            case .array(let list), .function(_, let list, _, _): list.forEach(visit)
            case .column, .constant, .untypedString, .star: break
            }
        }
        func visit(_ select: SelectStatement) {
            select.targets.forEach { visit($0.expression) }
            visit(select.whereClause)
            select.groupBy.forEach(visit)
            select.orderBy.forEach { visit($0.expression) }
            visit(select.limit)
            visit(select.offset)
        }
        switch self {
        case .select(let select), .explain(let select), .declareCursor(_, let select): visit(select)
        case .insert(let insert):
            insert.rows.forEach { $0.forEach(visit) }
        default: break
        }
        return highest
    }
}
