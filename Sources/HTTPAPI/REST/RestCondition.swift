import PostgresClient

/// PostgREST's filter operators (`column=op.value`), as in PostgREST 12–13.
enum RestOperator: String, Sendable, CaseIterable {
    case eq, neq, gt, gte, lt, lte, like, ilike, match, imatch
    case `in`, `is`, isdistinct
    case fts, plfts, phfts, wfts
    case cs, cd, ov, sl, sr, nxr, nxl, adj

    /// Operators that take `(any)` / `(all)` and a list in braces.
    var takesQuantifier: Bool {
        switch self {
        case .eq, .neq, .gt, .gte, .lt, .lte, .like, .ilike, .match, .imatch: return true
        default: return false
        }
    }

    var isTextSearch: Bool { [.fts, .plfts, .phfts, .wfts].contains(self) }

    /// The SQL operator of the simple binary ones.
    var sqlOperator: String? {
        switch self {
        case .eq: "="
        case .neq: "<>"
        case .gt: ">"
        case .gte: ">="
        case .lt: "<"
        case .lte: "<="
        case .like: "LIKE"
        case .ilike: "ILIKE"
        case .match: "~"
        case .imatch: "~*"
        case .isdistinct: "IS DISTINCT FROM"
        case .cs: "@>"
        case .cd: "<@"
        case .ov: "&&"
        case .sl: "<<"
        case .sr: ">>"
        case .nxr: "&<"
        case .nxl: "&>"
        case .adj: "-|-"
        case .in, .is, .fts, .plfts, .phfts, .wfts: nil
        }
    }
}

/// One filter: `field=[not.]op[(any|all)|(language)].value`.
struct RestFilter: Sendable, Equatable {
    enum Quantifier: String, Sendable { case any, all }

    var field: RestField
    var negated = false
    var op: RestOperator
    var quantifier: Quantifier?
    /// The text search configuration of `fts(english).…`.
    var language: String?
    var value: String

    /// Parses `[not.]op[(modifier)].value` for `field`.
    static func parse(field: RestField, _ text: Substring) throws -> RestFilter {
        var rest = text
        var negated = false
        if rest.hasPrefix("not.") {
            negated = true
            rest = rest.dropFirst(4)
        }
        guard let dot = rest.firstIndex(of: ".") else {
            throw RestError.parse(
                "the filter on \(field.column) needs an operator and a value: \(field.column)=eq.value",
                details: "operators: " + RestOperator.allCases.map(\.rawValue).joined(separator: ", "))
        }
        var name = rest[..<dot]
        var modifier: Substring?
        if let open = name.firstIndex(of: "("), name.hasSuffix(")") {
            modifier = name[name.index(after: open)..<name.index(before: name.endIndex)]
            name = name[..<open]
        }
        guard let op = RestOperator(rawValue: String(name)) else {
            throw RestError.parse(
                "unknown operator '\(name.prefix(20))' in the filter on \(field.column)",
                details: "operators: " + RestOperator.allCases.map(\.rawValue).joined(separator: ", "))
        }
        var filter = RestFilter(field: field, negated: negated, op: op, value: String(rest[rest.index(after: dot)...]))
        if let modifier {
            if op.takesQuantifier, let quantifier = Quantifier(rawValue: String(modifier)) {
                filter.quantifier = quantifier
                guard filter.value.hasPrefix("{"), filter.value.hasSuffix("}") else {
                    throw RestError.parse(
                        "\(op.rawValue)(\(quantifier.rawValue)) takes a list in braces: \(field.column)=\(op.rawValue)(\(quantifier.rawValue)).{a,b}"
                    )
                }
            } else if op.isTextSearch, !modifier.isEmpty,
                modifier.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || $0 == 95 || ($0 >= 48 && $0 <= 57) })
            {
                filter.language = String(modifier)
            } else {
                throw RestError.parse(
                    "'\(op.rawValue)(\(modifier.prefix(20)))' is not a known modifier: (any) and (all) go with eq, neq, gt, gte, lt, lte, like, ilike, match and imatch; a text search configuration such as fts(english) with fts, plfts, phfts and wfts"
                )
            }
        }
        switch op {
        case .is:
            guard ["null", "not_null", "true", "false", "unknown"].contains(filter.value.lowercased()) else {
                throw RestError.parse(
                    "is. takes null, not_null, true, false or unknown, got '\(filter.value.prefix(40))'")
            }
        case .in:
            guard filter.value.hasPrefix("("), filter.value.hasSuffix(")") else {
                throw RestError.parse("in. takes a list in parentheses: \(field.column)=in.(1,2,3)")
            }
        default:
            break
        }
        return filter
    }

    /// The condition's SQL; values are bound. `columnType` gives a column's `format_type`.
    func sql(_ parameters: inout [String?], qualifier: String?, columnType: (String) -> String?) -> String {
        func bind(_ value: String) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        let expression = field.sql(&parameters, qualifier: qualifier)
        let condition: String
        switch op {
        case .in:
            let values = RestLists.items(of: value)
            condition = values.isEmpty ? "false" : "\(expression) IN (\(values.map(bind).joined(separator: ", ")))"
        case .is:
            let words = [
                "null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN",
            ]
            condition = "\(expression) IS \(words[value.lowercased()] ?? "NULL")"
        case .fts, .plfts, .phfts, .wfts:
            let function =
                switch op {
                case .plfts: "plainto_tsquery"
                case .phfts: "phraseto_tsquery"
                case .wfts: "websearch_to_tsquery"
                default: "to_tsquery"
                }
            let configuration = language.map { "\(bind($0))::regconfig, " } ?? ""
            let isVector = field.steps.isEmpty && columnType(field.column) == "tsvector"
            let document = isVector ? expression : "to_tsvector(\(configuration)\(expression)::text)"
            condition = "\(document) @@ \(function)(\(configuration)\(bind(value)))"
        case .like, .ilike, .match, .imatch:
            let pattern = op == .like || op == .ilike ? value.replacingOccurrences(of: "*", with: "%") : value
            if let quantifier {
                condition =
                    "\(expression)::text \(op.sqlOperator!) \(quantifier.rawValue.uppercased())(\(bind(pattern))::text[])"
            } else {
                condition = "\(expression)::text \(op.sqlOperator!) \(bind(pattern))"
            }
        default:
            if let quantifier {
                condition = "\(expression) \(op.sqlOperator!) \(quantifier.rawValue.uppercased())(\(bind(value)))"
            } else {
                condition = "\(expression) \(op.sqlOperator!) \(bind(value))"
            }
        }
        return negated ? "NOT (\(condition))" : condition
    }
}

/// A filter or a logic tree: `and=(…)`, `or=(…)`, nested, negated with `not.`.
indirect enum RestCondition: Sendable, Equatable {
    case filter(RestFilter)
    case group(isOr: Bool, negated: Bool, [RestCondition])

    /// Parses the value of `or=` / `and=` (with its parentheses).
    static func tree(isOr: Bool, negated: Bool, _ text: Substring) throws -> RestCondition {
        guard text.hasPrefix("("), text.hasSuffix(")"), text.count >= 2 else {
            throw RestError.parse(
                "\(isOr ? "or" : "and")= takes a list in parentheses: \(isOr ? "or" : "and")=(id.eq.1,name.eq.a)")
        }
        let inner = text.dropFirst().dropLast()
        let items = try RestLists.split(inner)
        guard !items.isEmpty else { throw RestError.parse("empty \(isOr ? "or" : "and")=()") }
        return .group(isOr: isOr, negated: negated, try items.map(Self.item))
    }

    /// One member of a logic tree: `field.op.value` or a nested `[not.]and(…)` / `[not.]or(…)`.
    static func item(_ raw: Substring) throws -> RestCondition {
        var text = raw
        var negated = false
        if text.hasPrefix("not.and(") || text.hasPrefix("not.or(") {
            negated = true
            text = text.dropFirst(4)
        }
        for (word, isOr) in [("and", false), ("or", true)] where text.hasPrefix(word + "(") {
            return try tree(isOr: isOr, negated: negated, text.dropFirst(word.count))
        }
        var scanner = RestScanner(raw)
        let field = try scanner.field()
        guard scanner.skip(".") else {
            throw RestError.parse("'\(raw.prefix(60))' in a logic tree should look like column.op.value")
        }
        var filter = try RestFilter.parse(field: field, scanner.rest)
        filter.value = RestLists.unquoted(filter.value)
        return .filter(filter)
    }

    func sql(_ parameters: inout [String?], qualifier: String?, columnType: (String) -> String?) -> String {
        switch self {
        case .filter(let filter):
            return filter.sql(&parameters, qualifier: qualifier, columnType: columnType)
        case .group(let isOr, let negated, let members):
            var parts: [String] = []
            for member in members {
                parts.append(member.sql(&parameters, qualifier: qualifier, columnType: columnType))
            }
            let joined = "(" + parts.joined(separator: isOr ? " OR " : " AND ") + ")"
            return negated ? "NOT \(joined)" : joined
        }
    }

    /// Every field the condition reads (to check them against the table).
    var fields: [RestField] {
        switch self {
        case .filter(let filter): [filter.field]
        case .group(_, _, let members): members.flatMap(\.fields)
        }
    }
}

/// Comma-separated lists with double quotes and nested parentheses, as in `in.(a,"b,c")`.
enum RestLists {
    /// Splits on commas outside quotes, parentheses and braces; fails on unbalanced input.
    static func split(_ text: Substring) throws -> [Substring] {
        var items: [Substring] = []
        var depth = 0
        var quoted = false
        var escaped = false
        var start = text.startIndex
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if escaped {
                escaped = false
            } else if quoted {
                if character == "\\" { escaped = true } else if character == "\"" { quoted = false }
            } else {
                switch character {
                case "\"": quoted = true
                case "(", "{": depth += 1
                case ")", "}":
                    depth -= 1
                    if depth < 0 { throw RestError.parse("unbalanced parentheses in '\(text.prefix(60))'") }
                case "," where depth == 0:
                    items.append(text[start..<index])
                    start = text.index(after: index)
                default: break
                }
            }
            index = text.index(after: index)
        }
        guard depth == 0, !quoted else {
            throw RestError.parse("unbalanced parentheses or quotes in '\(text.prefix(60))'")
        }
        if start < text.endIndex || !items.isEmpty { items.append(text[start...]) }
        return items
    }

    /// The values of `(a,"b,c",d)`, unquoted.
    static func items(of list: String) -> [String] {
        let inner = Substring(list).dropFirst().dropLast()
        guard !inner.isEmpty, let items = try? split(inner) else { return [] }
        return items.map { unquoted(String($0.trimmingSpaces)) }
    }

    /// `"a \"b\""` → `a "b"`; anything else as it is.
    static func unquoted(_ value: String) -> String {
        guard value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") else { return value }
        var result = ""
        var escaped = false
        for character in value.dropFirst().dropLast() {
            if escaped {
                result.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        return result
    }
}
