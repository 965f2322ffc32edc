import Foundation

// One piece (over 400 lines): `check` and `evaluate` must agree case by case on what is
// evaluated, so they stay side by side.

/// Evaluates expressions against one row of a table. `check` runs first (once per statement),
/// so that a condition pgbridge cannot evaluate is refused before any row is read.
struct SQLEvaluator {
    /// Column positions by name.
    let columns: [String: Int]
    let columnTypes: [SQLType]
    /// Bound parameter values (`$1` is index 0); text until a cast gives them a type.
    let parameters: [SQLValue]
    /// What `pg_relation_size` reports, by table.
    var relationSize: (String) -> Int64? = { _ in nil }

    static let aggregates: Set<String> = ["count", "sum", "min", "max", "avg"]
    static let scalarFunctions: Set<String> = [
        "lower", "upper", "length", "char_length", "coalesce", "abs", "btrim", "trim", "pg_relation_size",
        "version", "jsonb_typeof", "json_typeof", "jsonb_extract_path_text", "jsonb_extract_path",
        "current_setting", "nullif", "greatest", "least", "starts_with",
    ]
    static let binaryOperators: Set<String> = [
        "=", "<>", "<", "<=", ">", ">=", "and", "or", "~~", "!~~", "~~*", "!~~*", "->", "->>", "#>", "#>>", "?",
        "@>", "<@", "||", "+", "-", "*", "/", "%", "is", "is not",
    ]

    /// Throws the error the expression would raise for a reason other than its data: an
    /// unknown column, a function or operator pgbridge does not evaluate, a missing parameter.
    func check(_ expression: SQLExpression, allowAggregates: Bool = false) throws(WireError) {
        switch expression {
        case .column(let name):
            guard columns[name] != nil else {
                throw WireError("42703", "column \"\(name)\" does not exist")
            }
        case .parameter(let n):
            guard n <= parameters.count else {
                throw WireError("08P01", "there is no parameter $\(n)")
            }
        case .binary(let op, _, _), .quantified(let op, _, _, _):
            guard Self.binaryOperators.contains(op) else { throw Self.refused(operator: op) }
        case .function(let name, let arguments, let star, let distinct):
            let bare = Self.bareName(name)
            if Self.aggregates.contains(bare) {
                guard allowAggregates else {
                    throw WireError("42803", "aggregate function \(bare)() is not allowed here")
                }
                guard !distinct else { throw .unsupported("\(bare)(DISTINCT …) is not evaluated by pgbridge") }
                guard star ? bare == "count" : arguments.count == 1 else {
                    throw WireError("42883", "function \(bare) with \(arguments.count) arguments does not exist")
                }
                for argument in arguments { try check(argument, allowAggregates: false) }  // no nesting
                return
            }
            guard Self.scalarFunctions.contains(bare) else {
                throw WireError(
                    "0A000", "pgbridge cannot evaluate the function \(bare)() in a query on its tables",
                    hint:
                        "filter on the table's columns with comparisons, IN, LIKE, IS NULL, AND/OR/NOT and jsonb -> / ->>, or compute it locally (e.g. in a MATERIALIZED CTE)"
                )
            }
        default:
            break
        }
        for child in expression.children { try check(child, allowAggregates: allowAggregates) }
    }

    static func refused(operator op: String) -> WireError {
        WireError(
            "0A000", "pgbridge cannot evaluate the operator \(op) in a query on its tables",
            hint:
                "filter on the table's columns with comparisons, IN, LIKE, IS NULL, AND/OR/NOT and jsonb -> / ->>, or compute it locally (e.g. in a MATERIALIZED CTE)"
        )
    }

    static func bareName(_ name: String) -> String {
        name.hasPrefix("pg_catalog.") ? String(name.dropFirst("pg_catalog.".count)) : name
    }

    /// Whether a WHERE condition holds (NULL does not).
    func holds(_ expression: SQLExpression, row: [SQLValue]) throws(WireError) -> Bool {
        if case .bool(true) = try evaluate(expression, row: row) { return true }
        return false
    }

    func evaluate(_ expression: SQLExpression, row: [SQLValue]) throws(WireError) -> SQLValue {
        switch expression {
        case .column(let name):
            guard let index = columns[name] else { throw WireError("42703", "column \"\(name)\" does not exist") }
            return row[index]
        case .constant(let value): return value
        case .untypedString(let text): return .text(text)
        case .parameter(let n):
            guard n <= parameters.count else { throw WireError("08P01", "there is no parameter $\(n)") }
            return parameters[n - 1]
        case .cast(let inner, let type):
            return try evaluate(inner, row: row).cast(to: type)
        case .not(let inner):
            switch try evaluate(inner, row: row) {
            case .null: return .null
            case .bool(let value): return .bool(!value)
            case let other: return .bool(!(try Self.truth(other)))
            }
        case .negate(let inner):
            switch try evaluate(inner, row: row) {
            case .null: return .null
            case .int(let value):
                guard value != Int64.min else { throw WireError("22003", "bigint out of range") }
                return .int(-value)
            case .double(let value): return .double(-value)
            case let other: throw WireError("42883", "operator does not exist: - \(other.type)")
            }
        case .isNull(let inner, let negated):
            return .bool(try evaluate(inner, row: row).isNull != negated)
        case .binary("and", let a, let b):
            let left = try evaluate(a, row: row)
            if case .bool(false) = left { return .bool(false) }
            let right = try evaluate(b, row: row)
            if case .bool(false) = right { return .bool(false) }
            if left.isNull || right.isNull { return .null }
            let l = try Self.truth(left)
            let r = try Self.truth(right)
            return .bool(l && r)
        case .binary("or", let a, let b):
            let left = try evaluate(a, row: row)
            if case .bool(true) = left { return .bool(true) }
            let right = try evaluate(b, row: row)
            if case .bool(true) = right { return .bool(true) }
            if left.isNull || right.isNull { return .null }
            let l = try Self.truth(left)
            let r = try Self.truth(right)
            return .bool(l || r)
        case .binary(let op, let a, let b):
            return try Self.apply(op, try evaluate(a, row: row), try evaluate(b, row: row))
        case .quantified(let op, let a, let all, let b):
            let left = try evaluate(a, row: row)
            guard case .array(let elements) = try evaluate(b, row: row).castToArray(like: left) else { return .null }
            var sawNull = false
            for element in elements {
                switch try Self.apply(op, left, element) {
                case .bool(let result):
                    if result != all { return .bool(!all) }
                default: sawNull = true
                }
            }
            return sawNull ? .null : .bool(all)
        case .inList(let a, let list, let negated):
            let left = try evaluate(a, row: row)
            var sawNull = false
            for item in list {
                switch try Self.apply("=", left, try evaluate(item, row: row)) {
                case .bool(true): return .bool(!negated)
                case .bool(false): break
                default: sawNull = true
                }
            }
            return sawNull ? .null : .bool(negated)
        case .array(let list):
            var values: [SQLValue] = []
            for item in list { values.append(try evaluate(item, row: row)) }
            return .array(values)
        case .function(let name, let arguments, _, _):
            var values: [SQLValue] = []
            for argument in arguments { values.append(try evaluate(argument, row: row)) }
            return try call(Self.bareName(name), values)
        case .star:
            throw .syntax("* is only allowed in a select list or count(*)")
        }
    }

    static func truth(_ value: SQLValue) throws(WireError) -> Bool {
        switch value {
        case .bool(let value): return value
        case .text(let text):
            guard case .bool(let value) = try SQLValue.parse(text, as: .bool) else { return false }
            return value
        default: throw WireError("42804", "argument of a condition must be type boolean, not \(value.type)")
        }
    }

    static func apply(_ op: String, _ left: SQLValue, _ right: SQLValue) throws(WireError) -> SQLValue {
        if op == "is" || op == "is not" {
            let matches = left == right
            return .bool(op == "is" ? matches : !matches)
        }
        if left.isNull || right.isNull { return .null }
        switch op {
        case "=": return .bool(try SQLValue.compare(left, right) == 0)
        case "<>": return .bool(try SQLValue.compare(left, right) != 0)
        case "<": return .bool(try SQLValue.compare(left, right) < 0)
        case "<=": return .bool(try SQLValue.compare(left, right) <= 0)
        case ">": return .bool(try SQLValue.compare(left, right) > 0)
        case ">=": return .bool(try SQLValue.compare(left, right) >= 0)
        case "~~", "!~~", "~~*", "!~~*":
            guard let text = left.text, let pattern = right.text else { return .null }
            let insensitive = op.hasSuffix("*")
            let matched = LikePattern.matches(
                insensitive ? text.lowercased() : text, insensitive ? pattern.lowercased() : pattern)
            return .bool(op.hasPrefix("!") ? !matched : matched)
        case "->", "->>":
            let document = try json(left)
            var member: JSONValue?
            if case .int(let index) = right {
                member = document[Int(index)]
            } else {
                member = document[right.text ?? ""]
            }
            guard let member else { return .null }
            if op == "->" { return .json(member) }
            return member.unquotedText.map(SQLValue.text) ?? .null
        case "#>", "#>>":
            var document: JSONValue? = try json(left)
            guard case .array(let path) = try right.cast(to: .array(.text)) else { return .null }
            for step in path {
                guard let key = step.text, let current = document else { return .null }
                document = Int(key).flatMap { current[$0] } ?? current[key]
            }
            guard let document else { return .null }
            if op == "#>" { return .json(document) }
            return document.unquotedText.map(SQLValue.text) ?? .null
        case "?":
            guard case .object(let members) = try json(left), let key = right.text else { return .bool(false) }
            return .bool(members.contains { $0.0 == key })
        case "@>": return .bool(contains(try json(left), try json(right)))
        case "<@": return .bool(contains(try json(right), try json(left)))
        case "||":
            return .text((left.text ?? "") + (right.text ?? ""))
        default:
            return try arithmetic(op, left, right)
        }
    }

    static func json(_ value: SQLValue) throws(WireError) -> JSONValue {
        switch value {
        case .json(let document): return document
        case .text(let text):
            guard let document = JSONValue(parsing: text) else {
                throw WireError("22P02", "invalid input syntax for type json")
            }
            return document
        default: throw WireError("42883", "operator does not exist: \(value.type) -> unknown")
        }
    }

    /// jsonb containment (`@>`).
    static func contains(_ container: JSONValue, _ contained: JSONValue) -> Bool {
        switch (container, contained) {
        case (.object(let members), .object(let wanted)):
            return wanted.allSatisfy { key, value in
                members.contains { $0.0 == key && contains($0.1, value) }
            }
        case (.array(let elements), .array(let wanted)):
            return wanted.allSatisfy { value in elements.contains { contains($0, value) } }
        case (.array(let elements), _):
            return elements.contains { $0 == contained }
        default:
            return container == contained
        }
    }

    static func arithmetic(_ op: String, _ left: SQLValue, _ right: SQLValue) throws(WireError) -> SQLValue {
        let l = try numeric(left)
        let r = try numeric(right)
        if case .int(let a) = l, case .int(let b) = r {
            switch op {
            case "+", "-", "*":
                let (result, overflow) =
                    op == "+"
                    ? a.addingReportingOverflow(b)
                    : op == "-" ? a.subtractingReportingOverflow(b) : a.multipliedReportingOverflow(by: b)
                guard !overflow else { throw WireError("22003", "bigint out of range") }
                return .int(result)
            case "/", "%":
                guard b != 0 else { throw WireError("22012", "division by zero") }
                if b == -1 {
                    // Int64.min / -1 overflows; x % -1 is 0.
                    guard op == "/" else { return .int(0) }
                    guard a != Int64.min else { throw WireError("22003", "bigint out of range") }
                    return .int(-a)
                }
                return .int(op == "/" ? a / b : a % b)
            default: break
            }
        }
        let a = l.doubleValue
        let b = r.doubleValue
        switch op {
        case "+": return .double(a + b)
        case "-": return .double(a - b)
        case "*": return .double(a * b)
        case "/":
            guard b != 0 else { throw WireError("22012", "division by zero") }
            return .double(a / b)
        case "%":
            guard b != 0 else { throw WireError("22012", "division by zero") }
            return .double(a.truncatingRemainder(dividingBy: b))
        default: throw refused(operator: op)
        }
    }

    static func numeric(_ value: SQLValue) throws(WireError) -> SQLValue {
        switch value {
        case .int, .double: return value
        case .text(let text):
            return try SQLValue.parse(text, as: text.contains(where: { ".eE".contains($0) }) ? .numeric : .int8)
        default: throw WireError("42883", "operator does not exist for type \(value.type): expected a number")
        }
    }

    func call(_ name: String, _ values: [SQLValue]) throws(WireError) -> SQLValue {
        func argument(_ index: Int) throws(WireError) -> SQLValue {
            guard index < values.count else {
                throw WireError("42883", "function \(name) with \(values.count) arguments does not exist")
            }
            return values[index]
        }
        switch name {
        case "coalesce": return values.first { !$0.isNull } ?? .null
        case "nullif":
            let first = try argument(0)
            if case .bool(true) = try Self.apply("=", first, try argument(1)) { return .null }
            return first
        case "greatest", "least":
            var best: SQLValue = .null
            for value in values where !value.isNull {
                if best.isNull { best = value; continue }
                let order = try SQLValue.compare(value, best)
                if name == "greatest" ? order > 0 : order < 0 { best = value }
            }
            return best
        case "version": return .text("PostgreSQL 15.0 (pgbridge)")
        case "current_setting":
            return .text(WireSessionDefaults.parameters[(try argument(0)).text ?? ""] ?? "")
        case "pg_relation_size":
            let table = try argument(0).text ?? ""
            guard let size = relationSize(table) else {
                throw WireError("42P01", "relation \"\(table)\" does not exist")
            }
            return .int(size)
        default: break
        }
        let first = try argument(0)
        if first.isNull { return .null }
        switch name {
        case "lower": return .text(first.text!.lowercased())
        case "upper": return .text(first.text!.uppercased())
        case "length", "char_length": return .int(Int64(first.text!.count))
        case "btrim", "trim": return .text(first.text!.trimmingCharacters(in: .whitespaces))
        case "starts_with":
            guard let prefix = try argument(1).text else { return .null }
            return .bool(first.text!.hasPrefix(prefix))
        case "abs":
            switch try Self.numeric(first) {
            case .int(let value):
                guard value != Int64.min else { throw WireError("22003", "bigint out of range") }
                return .int(abs(value))
            case let other: return .double(abs(other.doubleValue))
            }
        case "jsonb_typeof", "json_typeof":
            switch try Self.json(first) {
            case .null: return .text("null")
            case .bool: return .text("boolean")
            case .number: return .text("number")
            case .string: return .text("string")
            case .array: return .text("array")
            case .object: return .text("object")
            }
        case "jsonb_extract_path_text", "jsonb_extract_path":
            let path = SQLValue.array(Array(values.dropFirst()))
            return try Self.apply(name.hasSuffix("_text") ? "#>>" : "#>", first, path)
        default:
            throw WireError("0A000", "pgbridge cannot evaluate the function \(name)()")
        }
    }
}

extension SQLValue {
    var doubleValue: Double {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        default: .nan
        }
    }

    /// An array operand of `= ANY (…)`: an array value, or an array literal's text.
    func castToArray(like element: SQLValue) throws(WireError) -> SQLValue {
        switch self {
        case .array, .null: return self
        case .text(let text):
            return .array(try SQLValue.parseArray(text, element: element.isNull ? .text : element.type))
        default: throw WireError("42809", "op ANY/ALL (array) requires an array on the right")
        }
    }
}

/// SQL LIKE: `%` any run, `_` one character, `\` escapes. Greedy matching that backtracks
/// only to the last `%`: O(text × pattern), whatever the pattern.
enum LikePattern {
    private enum Element: Equatable {
        case any
        case one
        case literal(Unicode.Scalar)
    }

    static func matches(_ text: String, _ pattern: String) -> Bool {
        var steps = 0
        return matches(text, pattern, steps: &steps)
    }

    /// `steps` counts the loop's iterations (tests check the bound).
    static func matches(_ text: String, _ pattern: String, steps: inout Int) -> Bool {
        var elements: [Element] = []
        var scalars = pattern.unicodeScalars.makeIterator()
        while let scalar = scalars.next() {
            switch scalar {
            case "%": if elements.last != .any { elements.append(.any) }
            case "_": elements.append(.one)
            case "\\": elements.append(.literal(scalars.next() ?? "\\"))
            default: elements.append(.literal(scalar))
            }
        }
        let characters = Array(text.unicodeScalars)
        var t = 0
        var p = 0
        var star: Int?
        var resume = 0
        while t < characters.count {
            steps += 1
            if p < elements.count {
                switch elements[p] {
                case .any:
                    star = p
                    resume = t
                    p += 1
                    continue
                case .one:
                    t += 1
                    p += 1
                    continue
                case .literal(let scalar) where scalar == characters[t]:
                    t += 1
                    p += 1
                    continue
                default:
                    break
                }
            }
            guard let star else { return false }
            p = star + 1
            resume += 1
            t = resume
        }
        while p < elements.count, elements[p] == .any { p += 1 }
        return p == elements.count
    }
}
