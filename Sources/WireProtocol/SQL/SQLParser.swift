// One piece (over 400 lines): a recursive-descent parser whose productions call each other;
// split across files they would have to share its cursor state.
/// Parses the SQL subset: what postgres_fdw sends, and the same statements typed in psql.
struct SQLParser {
    private var tokens: [SQLToken]
    private var position = 0
    /// Operators and nesting in the statement so far: expression trees are evaluated (and
    /// freed) recursively, so their depth is bounded where they are built.
    private var operators = 0
    private var nesting = 0
    static let maximumOperators = 500
    static let maximumNesting = 200

    init(_ text: String) throws(WireError) { tokens = try SQLLexer.tokenize(text) }

    /// Every statement of a query string (`;`-separated); empty statements are dropped.
    static func parse(_ text: String) throws(WireError) -> [SQLStatement] {
        var parser = try SQLParser(text)
        var statements: [SQLStatement] = []
        while parser.current != .end {
            if parser.accept(";") { continue }
            statements.append(try parser.statement())
            if parser.current != .end { try parser.expect(";") }
        }
        return statements
    }

    // MARK: - Tokens

    private var current: SQLToken { tokens[position] }
    private func lookahead(_ offset: Int) -> SQLToken { tokens[min(position + offset, tokens.count - 1)] }

    private mutating func advance() -> SQLToken {
        let token = current
        if position < tokens.count - 1 { position += 1 }
        return token
    }

    private mutating func accept(_ symbol: String) -> Bool {
        guard current == .symbol(symbol) else { return false }
        position += 1
        return true
    }

    private mutating func acceptKeyword(_ words: String...) -> Bool {
        for (offset, word) in words.enumerated() where !lookahead(offset).isKeyword(word) { return false }
        position += words.count
        return true
    }

    private mutating func expect(_ symbol: String) throws(WireError) {
        guard accept(symbol) else { throw unexpected(expecting: "\"\(symbol)\"") }
    }

    private mutating func expectKeyword(_ word: String) throws(WireError) {
        guard acceptKeyword(word) else { throw unexpected(expecting: word.uppercased()) }
    }

    private func unexpected(expecting: String? = nil) -> WireError {
        let near: String
        switch current {
        case .end: near = "end of input"
        case .identifier(let name, _): near = "\"\(name)\""
        case .string(let text): near = "'\(text.prefix(40))'"
        case .number(let text): near = "\"\(text)\""
        case .parameter(let n): near = "\"$\(n)\""
        case .symbol(let text): near = "\"\(text)\""
        }
        return .syntax("syntax error at or near \(near)" + (expecting.map { ": expected \($0)" } ?? ""))
    }

    private mutating func identifier() throws(WireError) -> String {
        guard case .identifier(let name, _) = current else { throw unexpected(expecting: "a name") }
        position += 1
        return name
    }

    // MARK: - Statements

    private mutating func statement() throws(WireError) -> SQLStatement {
        guard case .identifier(let word, false) = current else {
            if current == .symbol("(") { throw .unsupported("parenthesised queries are not supported by pgbridge") }
            throw unexpected()
        }
        position += 1
        switch word {
        case "select":
            position -= 1
            return .select(try select())
        case "explain":
            while acceptKeyword("verbose") || acceptKeyword("analyze") {}
            if accept("(") { while !accept(")") { guard advance() != .end else { throw unexpected() } } }
            return .explain(try select())
        case "insert": return .insert(try insert())
        case "update", "delete", "merge", "truncate", "copy":
            throw .unsupported(
                "\(word.uppercased()) is not supported on pgbridge's tables: they are append-only streams",
                hint: "use INSERT to produce messages; read them with SELECT")
        case "set":
            skipToStatementEnd()
            return .set
        case "reset":
            skipToStatementEnd()
            return .reset
        case "show":
            var name = try identifier()
            while accept(".") { name += "." + (try identifier()) }
            return .show(name)
        case "begin":
            _ = acceptKeyword("transaction") || acceptKeyword("work")
            skipToStatementEnd()
            return .begin(tag: "BEGIN")
        case "start":
            try expectKeyword("transaction")
            skipToStatementEnd()
            return .begin(tag: "START TRANSACTION")
        case "commit", "end":
            _ = acceptKeyword("transaction") || acceptKeyword("work")
            return .commit
        case "abort", "rollback":
            _ = acceptKeyword("transaction") || acceptKeyword("work")
            if word == "rollback", acceptKeyword("to") {
                _ = acceptKeyword("savepoint")
                return .rollbackToSavepoint(try identifier())
            }
            return .rollback
        case "savepoint": return .savepoint(try identifier())
        case "release":
            _ = acceptKeyword("savepoint")
            return .releaseSavepoint(try identifier())
        case "declare": return try declare()
        case "fetch", "move":
            guard word == "fetch" else { throw .unsupported("MOVE is not supported: use FETCH") }
            return try fetch()
        case "close":
            if acceptKeyword("all") { return .closeCursor(nil) }
            return .closeCursor(try identifier())
        case "deallocate":
            _ = acceptKeyword("prepare")
            if acceptKeyword("all") { return .deallocate(nil) }
            return .deallocate(try identifier())
        case "discard":
            try expectKeyword("all")
            return .discardAll
        default:
            position -= 1
            throw .syntax(
                "syntax error at or near \"\(word)\": pgbridge serves SELECT, INSERT, EXPLAIN, cursors and transactions"
            )
        }
    }

    private mutating func skipToStatementEnd() {
        while current != .end, current != .symbol(";") { position += 1 }
    }

    private mutating func declare() throws(WireError) -> SQLStatement {
        let name = try identifier()
        while acceptKeyword("binary") || acceptKeyword("insensitive") || acceptKeyword("no", "scroll")
            || acceptKeyword("asensitive")
        {}
        if acceptKeyword("scroll") { throw .unsupported("scrollable cursors are not supported by pgbridge") }
        try expectKeyword("cursor")
        if acceptKeyword("with", "hold") {
            throw .unsupported("WITH HOLD cursors are not supported by pgbridge")
        }
        _ = acceptKeyword("without", "hold")
        try expectKeyword("for")
        return .declareCursor(name, try select())
    }

    private mutating func fetch() throws(WireError) -> SQLStatement {
        var count: Int? = 1
        if acceptKeyword("forward") {
            if acceptKeyword("all") {
                count = nil
            } else if case .number(let text) = current, let n = Int(text) {
                position += 1
                count = n
            }
        } else if acceptKeyword("next") {
            count = 1
        } else if acceptKeyword("all") {
            count = nil
        } else if case .number(let text) = current {
            guard let n = Int(text), n >= 0 else { throw .syntax("invalid FETCH count \(text)") }
            position += 1
            count = n
        } else if acceptKeyword("backward") || acceptKeyword("prior") || acceptKeyword("absolute")
            || acceptKeyword("relative") || acceptKeyword("first") || acceptKeyword("last")
        {
            throw .unsupported("pgbridge cursors only move forward: use FETCH n or FETCH ALL")
        }
        _ = acceptKeyword("from") || acceptKeyword("in")
        return .fetch(try identifier(), count: count)
    }

    private mutating func tableName() throws(WireError) -> TableName {
        let first = try identifier()
        if accept(".") { return TableName(schema: first, name: try identifier()) }
        return TableName(schema: nil, name: first)
    }

    mutating func select() throws(WireError) -> SelectStatement {
        try expectKeyword("select")
        var select = SelectStatement()
        if acceptKeyword("distinct") { throw .unsupported("SELECT DISTINCT is not supported by pgbridge") }
        _ = acceptKeyword("all")
        repeat {
            let expression = try expression()
            var alias: String?
            if acceptKeyword("as") {
                alias = try identifier()
            } else if case .identifier(let name, let quoted) = current,
                quoted || !Self.clauseWords.contains(name)
            {
                position += 1
                alias = name
            }
            select.targets.append(SelectTarget(expression: expression, alias: alias))
        } while accept(",")
        if acceptKeyword("from") {
            if current == .symbol("(") {
                throw .unsupported(
                    "joins and subqueries are not evaluated by pgbridge",
                    hint:
                        "postgres_fdw pushes a join of two pgbridge tables to pgbridge: read one side in a MATERIALIZED CTE, or join with a local table"
                )
            }
            select.from = try tableName()
            if acceptKeyword("as") {
                _ = try identifier()
            } else if case .identifier(let name, _) = current, !Self.clauseWords.contains(name) {
                position += 1
            }
            if accept(",") || current.isKeyword("join") || current.isKeyword("inner") || current.isKeyword("left")
                || current.isKeyword("cross") || current.isKeyword("right") || current.isKeyword("full")
            {
                throw .unsupported(
                    "joins are not evaluated by pgbridge",
                    hint: "read one side in a MATERIALIZED CTE, or join with a local table")
            }
        }
        if acceptKeyword("where") { select.whereClause = try expression() }
        if acceptKeyword("group", "by") {
            repeat { select.groupBy.append(try expression()) } while accept(",")
        }
        if acceptKeyword("having") { throw .unsupported("HAVING is not supported by pgbridge") }
        if acceptKeyword("order", "by") {
            repeat {
                let expression = try expression()
                var descending = false
                if acceptKeyword("desc") { descending = true } else { _ = acceptKeyword("asc") }
                var nullsFirst = descending
                if acceptKeyword("nulls", "first") {
                    nullsFirst = true
                } else if acceptKeyword("nulls", "last") {
                    nullsFirst = false
                }
                select.orderBy.append(OrderTerm(expression: expression, descending: descending, nullsFirst: nullsFirst))
            } while accept(",")
        }
        while true {
            if acceptKeyword("limit") {
                select.limit = acceptKeyword("all") ? nil : try expression()
            } else if acceptKeyword("offset") {
                select.offset = try expression()
                _ = acceptKeyword("rows") || acceptKeyword("row")
            } else {
                break
            }
        }
        if acceptKeyword("for") {
            throw .unsupported("SELECT … FOR UPDATE/SHARE is not supported: pgbridge's tables cannot be locked")
        }
        return select
    }

    private static let clauseWords: Set<String> = [
        "from", "where", "group", "order", "limit", "offset", "having", "for", "union", "join", "inner", "left",
        "right", "full", "cross", "on", "returning", "values",
    ]

    private mutating func insert() throws(WireError) -> InsertStatement {
        try expectKeyword("into")
        let table = try tableName()
        if acceptKeyword("as") { _ = try identifier() }
        var columns: [String] = []
        if accept("(") {
            repeat { columns.append(try identifier()) } while accept(",")
            try expect(")")
        }
        try expectKeyword("values")
        var rows: [[SQLExpression]] = []
        repeat {
            try expect("(")
            var row: [SQLExpression] = []
            repeat {
                if acceptKeyword("default") { row.append(.constant(.null)) } else { row.append(try expression()) }
            } while accept(",")
            try expect(")")
            rows.append(row)
        } while accept(",")
        if acceptKeyword("on", "conflict") {
            throw .unsupported("ON CONFLICT is not supported: pgbridge's tables are append-only")
        }
        var returning: [SelectTarget] = []
        if acceptKeyword("returning") {
            repeat {
                let expression = try expression()
                var alias: String?
                if acceptKeyword("as") { alias = try identifier() }
                returning.append(SelectTarget(expression: expression, alias: alias))
            } while accept(",")
        }
        return InsertStatement(table: table, columns: columns, rows: rows, returning: returning)
    }

    // MARK: - Expressions

    mutating func expression() throws(WireError) -> SQLExpression {
        try enter()
        defer { nesting -= 1 }
        return try or()
    }

    /// One level deeper (parentheses, NOT, unary minus); throws past the limit.
    private mutating func enter() throws(WireError) {
        nesting += 1
        guard nesting <= Self.maximumNesting else {
            nesting -= 1
            throw WireError("54001", "the expression is nested too deeply (more than \(Self.maximumNesting) levels)")
        }
    }

    /// Counts one operator node; throws past the limit.
    private mutating func counted(_ node: SQLExpression) throws(WireError) -> SQLExpression {
        operators += 1
        guard operators <= Self.maximumOperators else {
            throw WireError(
                "54001", "the statement has too many operators (more than \(Self.maximumOperators))",
                hint: "use IN (…) or = ANY ('{…}') for long lists of alternatives")
        }
        return node
    }

    private mutating func or() throws(WireError) -> SQLExpression {
        var left = try and()
        while acceptKeyword("or") { left = try counted(.binary("or", left, try and())) }
        return left
    }

    private mutating func and() throws(WireError) -> SQLExpression {
        var left = try not()
        while acceptKeyword("and") { left = try counted(.binary("and", left, try not())) }
        return left
    }

    private mutating func not() throws(WireError) -> SQLExpression {
        if acceptKeyword("not") {
            try enter()
            defer { nesting -= 1 }
            return try counted(.not(try not()))
        }
        return try isTest()
    }

    private mutating func isTest() throws(WireError) -> SQLExpression {
        var left = try comparison()
        while acceptKeyword("is") {
            let negated = acceptKeyword("not")
            if acceptKeyword("null") {
                left = try counted(.isNull(left, negated: negated))
            } else if acceptKeyword("true") {
                left = try counted(.binary(negated ? "is not" : "is", left, .constant(.bool(true))))
            } else if acceptKeyword("false") {
                left = try counted(.binary(negated ? "is not" : "is", left, .constant(.bool(false))))
            } else {
                throw unexpected(expecting: "NULL, TRUE or FALSE")
            }
        }
        return left
    }

    private static let comparisonOperators: Set<String> = ["=", "<>", "!=", "<", "<=", ">", ">="]

    private mutating func comparison() throws(WireError) -> SQLExpression {
        var left = try pattern()
        while case .symbol(let op) = current, Self.comparisonOperators.contains(op) {
            position += 1
            let normalized = op == "!=" ? "<>" : op
            if acceptKeyword("any") || acceptKeyword("some") {
                left = try counted(.quantified(normalized, left, all: false, try parenthesised()))
            } else if acceptKeyword("all") {
                left = try counted(.quantified(normalized, left, all: true, try parenthesised()))
            } else {
                left = try counted(.binary(normalized, left, try pattern()))
            }
        }
        return left
    }

    private mutating func parenthesised() throws(WireError) -> SQLExpression {
        try expect("(")
        let inner = try expression()
        try expect(")")
        return inner
    }

    private mutating func pattern() throws(WireError) -> SQLExpression {
        let left = try other()
        let negated = acceptKeyword("not")
        if acceptKeyword("like") {
            return try counted(.binary(negated ? "!~~" : "~~", left, try other()))
        } else if acceptKeyword("ilike") {
            return try counted(.binary(negated ? "!~~*" : "~~*", left, try other()))
        } else if acceptKeyword("in") {
            try expect("(")
            if current.isKeyword("select") { throw .unsupported("IN (SELECT …) is not supported by pgbridge") }
            var list: [SQLExpression] = []
            repeat { list.append(try expression()) } while accept(",")
            try expect(")")
            return try counted(.inList(left, list, negated: negated))
        } else if acceptKeyword("between") {
            let low = try other()
            try expectKeyword("and")
            let high = try other()
            let test = SQLExpression.binary("and", .binary(">=", left, low), .binary("<=", left, high))
            return negated ? .not(test) : test
        }
        if negated { throw unexpected(expecting: "LIKE, ILIKE, IN or BETWEEN after NOT") }
        return left
    }

    private static let otherOperators: Set<String> = [
        "->", "->>", "||", "~~", "!~~", "~~*", "!~~*", "~", "!~", "~*", "!~*", "@>", "<@", "?", "?|", "?&", "#>",
        "#>>",
    ]

    private mutating func other() throws(WireError) -> SQLExpression {
        var left = try additive()
        while case .symbol(let op) = current, Self.otherOperators.contains(op) {
            position += 1
            left = try counted(.binary(op, left, try additive()))
        }
        return left
    }

    private mutating func additive() throws(WireError) -> SQLExpression {
        var left = try multiplicative()
        while case .symbol(let op) = current, op == "+" || op == "-" {
            position += 1
            left = try counted(.binary(op, left, try multiplicative()))
        }
        return left
    }

    private mutating func multiplicative() throws(WireError) -> SQLExpression {
        var left = try unary()
        while case .symbol(let op) = current, op == "*" || op == "/" || op == "%" {
            position += 1
            left = try counted(.binary(op, left, try unary()))
        }
        return left
    }

    private mutating func unary() throws(WireError) -> SQLExpression {
        try enter()
        defer { nesting -= 1 }
        if accept("-") {
            let operand = try unary()
            if case .constant(.int(let value)) = operand { return .constant(.int(-value)) }
            if case .constant(.double(let value)) = operand { return .constant(.double(-value)) }
            return try counted(.negate(operand))
        }
        if accept("+") { return try counted(try unary()) }
        return try postfix()
    }

    private mutating func postfix() throws(WireError) -> SQLExpression {
        var value = try primary()
        while true {
            if accept("::") {
                value = try counted(.cast(value, try typeName()))
            } else if accept("[") {
                throw .unsupported("array subscripts are not supported by pgbridge")
            } else {
                return value
            }
        }
    }

    /// A type name as casts spell it: `integer`, `pg_catalog.regclass`, `timestamp with time zone`,
    /// `character varying(10)`, `integer[]`.
    mutating func typeName() throws(WireError) -> SQLType {
        var words = [try identifier()]
        if words[0] == "pg_catalog", accept(".") { words = [try identifier()] }
        switch words[0] {
        case "double": if acceptKeyword("precision") { words.append("precision") }
        case "character": if acceptKeyword("varying") { words.append("varying") }
        case "timestamp", "time":
            if acceptKeyword("with", "time", "zone") {
                words.append("with time zone")
            } else if acceptKeyword("without", "time", "zone") {
                words.append("without time zone")
            }
        default: break
        }
        if current == .symbol("(") {
            throw .unsupported(
                "casts with a type modifier (\(words.joined(separator: " "))(…)) are not evaluated by pgbridge",
                hint: "cast without the modifier, or apply it locally")
        }
        var name = words.joined(separator: " ")
        if case .identifier(_, quoted: true) = tokens[position - 1], name == "char" { name = "\"char\"" }
        while accept("[") {
            try expect("]")
            name += "[]"
        }
        guard let type = SQLType(sqlName: name) else {
            throw WireError("42704", "type \"\(name)\" is not supported by pgbridge")
        }
        return type
    }

    private mutating func primary() throws(WireError) -> SQLExpression {
        let token = advance()
        switch token {
        case .number(let text):
            if let value = Int64(text) { return .constant(.int(value)) }
            guard let value = Double(text) else { throw .syntax("invalid number \(text)") }
            return .constant(.double(value))
        case .string(let text):
            return .untypedString(text)
        case .parameter(let n):
            return .parameter(n)
        case .symbol("("):
            if current.isKeyword("select") {
                // postgres_fdw costs parameterized paths (use_remote_estimate) with a placeholder
                // `((SELECT null::type)::type)`: a typed NULL.
                if lookahead(1).isKeyword("null"), lookahead(2) == .symbol("::") {
                    position += 3
                    let type = try typeName()
                    try expect(")")
                    return .cast(.constant(.null), type)
                }
                throw .unsupported("subqueries are not supported by pgbridge")
            }
            let inner = try expression()
            try expect(")")
            return inner
        case .symbol("*"):
            return .star
        case .identifier(let name, let quoted):
            if !quoted {
                switch name {
                case "null": return .constant(.null)
                case "true": return .constant(.bool(true))
                case "false": return .constant(.bool(false))
                case "array":
                    try expect("[")
                    var elements: [SQLExpression] = []
                    if !accept("]") {
                        repeat { elements.append(try expression()) } while accept(",")
                        try expect("]")
                    }
                    return .array(elements)
                case "case", "exists", "interval", "cast":
                    if name == "cast" {
                        try expect("(")
                        let inner = try expression()
                        try expectKeyword("as")
                        let type = try typeName()
                        try expect(")")
                        return .cast(inner, type)
                    }
                    throw .unsupported("\(name.uppercased()) expressions are not supported by pgbridge")
                default: break
                }
                // A typed literal: `timestamptz '2026-01-01'`, `jsonb '{}'`.
                if case .string(let text) = current, let type = SQLType(sqlName: name) {
                    position += 1
                    return .cast(.untypedString(text), type)
                }
            }
            var parts = [name]
            while accept(".") {
                if accept("*") { return .star }
                parts.append(try identifier())
            }
            if accept("(") {
                let function = parts.joined(separator: ".")
                var arguments: [SQLExpression] = []
                var star = false
                var distinct = false
                if accept("*") {
                    star = true
                } else if current != .symbol(")") {
                    distinct = acceptKeyword("distinct")
                    repeat { arguments.append(try expression()) } while accept(",")
                }
                try expect(")")
                if acceptKeyword("filter") || acceptKeyword("over") || acceptKeyword("within") {
                    throw .unsupported("FILTER, OVER and WITHIN GROUP are not supported by pgbridge")
                }
                return .function(function, arguments, star: star, distinct: distinct)
            }
            // A column, possibly qualified by its table or alias (`r1.col`): the last part names it.
            return .column(parts.last!)
        default:
            position -= 1
            throw unexpected(expecting: "an expression")
        }
    }
}
