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
        let expressions: [SQLExpression]
        switch self {
        case .select(let select), .explain(let select), .declareCursor(_, let select): expressions = select.expressions
        case .insert(let insert): expressions = insert.expressions
        default: expressions = []
        }
        var highest = 0
        for expression in expressions {
            expression.visit { node in
                if case .parameter(let n) = node { highest = max(highest, n) }
                return true
            }
        }
        return highest
    }
}
