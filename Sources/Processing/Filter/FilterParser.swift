import BridgeCore

/// Recursive-descent parser for `FilterExpression` (precedence: or < and < not < predicate).
struct FilterParser {
    enum Token: Equatable {
        case identifier(String)
        case string([UInt8])
        case number(Double)
        case symbol(String)
        case end
    }

    private let characters: [Character]
    private var index = 0
    private var token: Token = .end
    /// 1-based position where the current token starts.
    private var tokenPosition = 1

    init(_ text: String) {
        characters = Array(text)
    }

    mutating func parseExpression() throws(FilterError) -> FilterExpression.Node {
        try advance()
        guard token != .end else { throw FilterError(message: "the filter is empty", position: 1) }
        return try parseOr()
    }

    mutating func expectEnd() throws(FilterError) {
        guard token == .end else { throw error("unexpected \(describe(token))") }
    }

    private mutating func parseOr() throws(FilterError) -> FilterExpression.Node {
        var node = try parseAnd()
        while isKeyword("or") {
            try advance()
            node = .or(node, try parseAnd())
        }
        return node
    }

    private mutating func parseAnd() throws(FilterError) -> FilterExpression.Node {
        var node = try parseNot()
        while isKeyword("and") {
            try advance()
            node = .and(node, try parseNot())
        }
        return node
    }

    private mutating func parseNot() throws(FilterError) -> FilterExpression.Node {
        if isKeyword("not") {
            try advance()
            return .not(try parseNot())
        }
        return try parsePredicate()
    }

    private mutating func parsePredicate() throws(FilterError) -> FilterExpression.Node {
        if token == .symbol("(") {
            try advance()
            let inner = try parseOr()
            guard token == .symbol(")") else { throw error("expected ')' but found \(describe(token))") }
            try advance()
            return inner
        }
        let left = try parseOperand()
        if case .symbol(let op) = token, let comparison = Self.comparisons[op] {
            try advance()
            return .compare(left, comparison, try parseOperand())
        }
        if isKeyword("is") {
            try advance()
            var negated = false
            if isKeyword("not") {
                negated = true
                try advance()
            }
            guard isKeyword("null") else { throw error("expected null after 'is'") }
            try advance()
            return .isNull(left, negated: negated)
        }
        var negated = false
        if isKeyword("not") {
            negated = true
            try advance()
        }
        if isKeyword("in") {
            try advance()
            guard token == .symbol("(") else { throw error("expected '(' after 'in'") }
            try advance()
            var list: [FilterExpression.Literal] = []
            while true {
                guard case .literal(let literal) = try parseOperand() else {
                    throw error("'in' lists take literals, not fields")
                }
                list.append(literal)
                if token == .symbol(",") {
                    try advance()
                    continue
                }
                guard token == .symbol(")") else { throw error("expected ',' or ')' in the list") }
                try advance()
                return .inList(left, list, negated: negated)
            }
        }
        if isKeyword("like") || isKeyword("ilike") {
            let caseInsensitive = isKeyword("ilike")
            try advance()
            guard case .string(let pattern) = token else { throw error("expected a 'pattern' after like") }
            try advance()
            return .like(left, pattern: pattern, caseInsensitive: caseInsensitive, negated: negated)
        }
        if negated { throw error("expected in, like or ilike after 'not'") }
        return .truthy(left)
    }

    private mutating func parseOperand() throws(FilterError) -> FilterExpression.Operand {
        switch token {
        case .number(let value):
            try advance()
            return .literal(.number(value))
        case .string(let value):
            try advance()
            return .literal(.string(value))
        case .symbol("-"):
            try advance()
            guard case .number(let value) = token else { throw error("expected a number after '-'") }
            try advance()
            return .literal(.number(-value))
        case .identifier(let name):
            switch name.lowercased() {
            case "true":
                try advance()
                return .literal(.bool(true))
            case "false":
                try advance()
                return .literal(.bool(false))
            case "null":
                try advance()
                return .literal(.null)
            case "and", "or", "not", "in", "is", "like", "ilike":
                throw error("expected a field or a value but found '\(name)'")
            default:
                guard let path = FieldPath(parsing: name) else {
                    throw error("unknown field '\(name)': use op, source.table, key.x, before.x, after.x or a column")
                }
                try advance()
                return .field(path)
            }
        default:
            throw error("expected a field or a value but found \(describe(token))")
        }
    }

    private static let comparisons: [String: FilterExpression.Comparison] = [
        "=": .equal, "==": .equal, "!=": .notEqual, "<>": .notEqual, "<": .less, "<=": .lessOrEqual,
        ">": .greater, ">=": .greaterOrEqual,
    ]

    private func isKeyword(_ word: String) -> Bool {
        if case .identifier(let name) = token { return name.lowercased() == word }
        return false
    }

    private func error(_ message: String) -> FilterError {
        FilterError(message: message, position: tokenPosition)
    }

    private func describe(_ token: Token) -> String {
        switch token {
        case .identifier(let name): "'\(name)'"
        case .string: "a string"
        case .number(let value): "the number \(value)"
        case .symbol(let symbol): "'\(symbol)'"
        case .end: "the end of the filter"
        }
    }

    // MARK: - Tokens

    private mutating func advance() throws(FilterError) {
        while index < characters.count, characters[index].isWhitespace { index += 1 }
        tokenPosition = index + 1
        guard index < characters.count else {
            token = .end
            return
        }
        let c = characters[index]
        if c == "'" {
            var bytes: [UInt8] = []
            index += 1
            while true {
                guard index < characters.count else {
                    throw FilterError(message: "unterminated string", position: tokenPosition)
                }
                if characters[index] == "'" {
                    if index + 1 < characters.count, characters[index + 1] == "'" {
                        bytes.append(UInt8(ascii: "'"))
                        index += 2
                        continue
                    }
                    index += 1
                    break
                }
                bytes.append(contentsOf: String(characters[index]).utf8)
                index += 1
            }
            token = .string(bytes)
            return
        }
        if c.isNumber {
            var text = ""
            while index < characters.count,
                characters[index].isNumber || characters[index] == "."
                    || characters[index] == "e" || characters[index] == "E"
            {
                text.append(characters[index])
                index += 1
            }
            guard let value = Double(text) else {
                throw FilterError(message: "'\(text)' is not a number", position: tokenPosition)
            }
            token = .number(value)
            return
        }
        if c.isLetter || c == "_" || c == "\"" {
            var name = ""
            while index < characters.count {
                let ch = characters[index]
                if ch == "\"" {  // a quoted part keeps any character: after."my col"
                    index += 1
                    while index < characters.count, characters[index] != "\"" {
                        name.append(characters[index])
                        index += 1
                    }
                    guard index < characters.count else {
                        throw FilterError(message: "unterminated quoted name", position: tokenPosition)
                    }
                    index += 1
                } else if ch.isLetter || ch.isNumber || ch == "_" || ch == "." {
                    name.append(ch)
                    index += 1
                } else {
                    break
                }
            }
            token = .identifier(name)
            return
        }
        for symbol in ["<=", ">=", "<>", "!=", "==", "=", "<", ">", "(", ")", ",", "-"]
        where characters[index...].starts(with: symbol) {
            index += symbol.count
            token = .symbol(symbol)
            return
        }
        throw FilterError(message: "unexpected character '\(c)'", position: tokenPosition)
    }
}
