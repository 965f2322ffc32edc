/// A token of the SQL subset.
enum SQLToken: Equatable {
    /// An identifier or keyword: unquoted ones are lowercased.
    case identifier(String, quoted: Bool)
    case string(String)
    case number(String)
    case parameter(Int)
    /// An operator (`=`, `<>`, `->>`, `~~`, `::`, …) or punctuation (`(`, `)`, `,`, `.`, `;`, `[`, `]`).
    case symbol(String)
    case end

    func isKeyword(_ word: String) -> Bool {
        if case .identifier(let name, false) = self { return name == word }
        return false
    }
}

/// Splits SQL text into tokens, PostgreSQL's way: `--` and `/* */` comments, `''` escapes,
/// `E'…'` backslash escapes, `"quoted"` identifiers, `$n` parameters.
struct SQLLexer {
    private let scalars: [Unicode.Scalar]
    private var index = 0
    private static let operatorCharacters = Set("+-*/<>=~!@#%^&|`?".unicodeScalars)

    init(_ text: String) { scalars = Array(text.unicodeScalars) }

    static func tokenize(_ text: String) throws(WireError) -> [SQLToken] {
        var lexer = SQLLexer(text)
        var tokens: [SQLToken] = []
        while true {
            let token = try lexer.next()
            tokens.append(token)
            if token == .end { return tokens }
        }
    }

    private func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    mutating func next() throws(WireError) -> SQLToken {
        try skipSpaceAndComments()
        guard let scalar = peek() else { return .end }
        if scalar == "'" { return .string(try readString(backslashEscapes: false)) }
        if (scalar == "E" || scalar == "e"), peek(1) == "'" {
            index += 1
            return .string(try readString(backslashEscapes: true))
        }
        if scalar == "\"" { return try readQuotedIdentifier() }
        if scalar.properties.isAlphabetic || scalar == "_" {
            var word = ""
            while let next = peek(),
                next.properties.isAlphabetic || next == "_" || next == "$" || ("0"..."9").contains(next)
            {
                word.unicodeScalars.append(next)
                index += 1
            }
            return .identifier(word.lowercased(), quoted: false)
        }
        if ("0"..."9").contains(scalar) || (scalar == "." && peek(1).map { ("0"..."9").contains($0) } == true) {
            return readNumber()
        }
        if scalar == "$", let digit = peek(1), ("0"..."9").contains(digit) {
            index += 1
            var digits = ""
            while let next = peek(), ("0"..."9").contains(next) {
                digits.unicodeScalars.append(next)
                index += 1
            }
            guard let number = Int(digits), number >= 1, number <= 32_767 else {
                throw .syntax("invalid parameter reference $\(digits)")
            }
            return .parameter(number)
        }
        if scalar == ":", peek(1) == ":" {
            index += 2
            return .symbol("::")
        }
        if "(),.;[]:".unicodeScalars.contains(scalar) {
            index += 1
            return .symbol(String(scalar))
        }
        if Self.operatorCharacters.contains(scalar) { return readOperator() }
        throw .syntax("syntax error at or near \"\(scalar)\"")
    }

    private mutating func skipSpaceAndComments() throws(WireError) {
        while let scalar = peek() {
            if scalar.properties.isWhitespace {
                index += 1
            } else if scalar == "-", peek(1) == "-" {
                while let next = peek(), next != "\n" { index += 1 }
            } else if scalar == "/", peek(1) == "*" {
                index += 2
                var depth = 1
                while depth > 0 {
                    guard let next = peek() else { throw .syntax("unterminated /* comment") }
                    if next == "*", peek(1) == "/" {
                        depth -= 1
                        index += 2
                    } else if next == "/", peek(1) == "*" {
                        depth += 1
                        index += 2
                    } else {
                        index += 1
                    }
                }
            } else {
                return
            }
        }
    }

    private mutating func readString(backslashEscapes: Bool) throws(WireError) -> String {
        index += 1
        var text = ""
        while true {
            guard let scalar = peek() else { throw .syntax("unterminated quoted string") }
            index += 1
            if scalar == "'" {
                if peek() == "'" {
                    text.unicodeScalars.append("'")
                    index += 1
                    continue
                }
                return text
            }
            if backslashEscapes, scalar == "\\", let escaped = peek() {
                index += 1
                switch escaped {
                case "n": text.unicodeScalars.append("\n")
                case "t": text.unicodeScalars.append("\t")
                case "r": text.unicodeScalars.append("\r")
                case "b": text.unicodeScalars.append("\u{08}")
                case "f": text.unicodeScalars.append("\u{0C}")
                default: text.unicodeScalars.append(escaped)
                }
                continue
            }
            text.unicodeScalars.append(scalar)
        }
    }

    private mutating func readQuotedIdentifier() throws(WireError) -> SQLToken {
        index += 1
        var name = ""
        while true {
            guard let scalar = peek() else { throw .syntax("unterminated quoted identifier") }
            index += 1
            if scalar == "\"" {
                if peek() == "\"" {
                    name.unicodeScalars.append("\"")
                    index += 1
                    continue
                }
                guard !name.isEmpty else { throw .syntax("zero-length delimited identifier") }
                return .identifier(name, quoted: true)
            }
            name.unicodeScalars.append(scalar)
        }
    }

    private mutating func readNumber() -> SQLToken {
        var text = ""
        func digits() {
            while let next = peek(), ("0"..."9").contains(next) || next == "_" {
                if next != "_" { text.unicodeScalars.append(next) }
                index += 1
            }
        }
        digits()
        if peek() == ".", peek(1) != "." {
            text.unicodeScalars.append(".")
            index += 1
            digits()
        }
        if let e = peek(), e == "e" || e == "E",
            let after = peek(1),
            ("0"..."9").contains(after)
                || ((after == "+" || after == "-") && peek(2).map { ("0"..."9").contains($0) } == true)
        {
            text.unicodeScalars.append("e")
            index += 1
            if let sign = peek(), sign == "+" || sign == "-" {
                text.unicodeScalars.append(sign)
                index += 1
            }
            digits()
        }
        return .number(text)
    }

    private mutating func readOperator() -> SQLToken {
        var text = ""
        while let next = peek(), Self.operatorCharacters.contains(next) {
            if next == "-", peek(1) == "-", !text.isEmpty { break }
            if next == "/", peek(1) == "*", !text.isEmpty { break }
            text.unicodeScalars.append(next)
            index += 1
        }
        // PostgreSQL: a multi-character operator cannot end in + or - unless it holds one of
        // ~ ! @ # % ^ & | ` ? (so `a>-1` is `a > -1`).
        while text.count > 1, text.hasSuffix("+") || text.hasSuffix("-"),
            !text.contains(where: { "~!@#%^&|`?".contains($0) })
        {
            text.removeLast()
            index -= 1
        }
        return .symbol(text)
    }
}
