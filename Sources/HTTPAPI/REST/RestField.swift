import PostgresClient

/// A column and optional JSON path steps, as PostgREST writes them: `data`, `data->a->>b`,
/// `data->0`, `"odd name"->>x`.
struct RestField: Sendable, Equatable {
    enum Key: Sendable, Equatable {
        case name(String)
        case index(Int)
    }

    struct Step: Sendable, Equatable {
        var key: Key
        /// `->>` (text) rather than `->` (json).
        var asText: Bool
    }

    var column: String
    var steps: [Step] = []

    /// The name PostgREST gives the value in a result: the last JSON key, else the column.
    var outputName: String {
        guard let last = steps.last else { return column }
        switch last.key {
        case .name(let name): return name
        case .index: return column
        }
    }

    static func isPlainKey(_ key: String) -> Bool {
        key.utf8.count <= 63
            && key.utf8.allSatisfy {
                ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45
                    || $0 == 32
            }
    }

    /// Parses a field; `text` must be all of it.
    static func parse(_ text: Substring) throws -> RestField {
        var scanner = RestScanner(text)
        let field = try scanner.field()
        guard scanner.atEnd else {
            throw RestError.parse("unexpected '\(scanner.rest.prefix(40))' after the field '\(text.prefix(60))'")
        }
        return field
    }

    /// The SQL expression; JSON keys are bound as parameters.
    func sql(_ parameters: inout [String?], qualifier: String? = nil) -> String {
        var expression = (qualifier.map { "\($0)." } ?? "") + SQL.identifier(column)
        for step in steps {
            expression += step.asText ? "->>" : "->"
            switch step.key {
            case .index(let index):
                expression += String(index)
            case .name(let name) where Self.isPlainKey(name):
                // Written out, so that the same path in select, order and GROUP BY is the same
                // expression: letters, digits, `_`, `-` and spaces cannot end a literal.
                expression += "'\(name)'"
            case .name(let name):
                parameters.append(name)
                expression += "$\(parameters.count)::text"
            }
        }
        return expression
    }
}

/// Reads the small languages of PostgREST's query string: fields, quoted names and values.
struct RestScanner {
    private let text: Substring
    private(set) var position: Substring.Index

    init(_ text: Substring) {
        self.text = text
        self.position = text.startIndex
    }

    var atEnd: Bool { position == text.endIndex }
    var rest: Substring { text[position...] }
    var peek: Character? { atEnd ? nil : text[position] }

    mutating func skip(_ prefix: String) -> Bool {
        guard rest.hasPrefix(prefix) else { return false }
        position = text.index(position, offsetBy: prefix.count)
        return true
    }

    mutating func advance() { position = text.index(after: position) }

    /// A name: double-quoted (`\"` and `""` are a quote), or up to one of `stops`.
    mutating func name(stoppingAt stops: Set<Character>, what: String) throws -> String {
        if peek == "\"" {
            advance()
            var name = ""
            while let character = peek {
                advance()
                if character == "\\", let next = peek {
                    name.append(next)
                    advance()
                } else if character == "\"" {
                    if peek == "\"" {
                        name.append("\"")
                        advance()
                    } else {
                        return try Self.checked(name, what: what)
                    }
                } else {
                    name.append(character)
                }
            }
            throw RestError.parse("unterminated quoted \(what) in '\(text.prefix(60))'")
        }
        var name = ""
        while let character = peek, !stops.contains(character) {
            if character == "-", rest.hasPrefix("->") { break }
            name.append(character)
            advance()
        }
        return try Self.checked(String(name.trimmingSpaces), what: what)
    }

    private static func checked(_ name: String, what: String) throws -> String {
        guard !name.isEmpty else { throw RestError.parse("empty \(what)") }
        guard name.utf8.count <= 63 else {
            throw RestError.parse("\(what) '\(name.prefix(40))…' is longer than 63 bytes")
        }
        guard !name.unicodeScalars.contains(where: { $0.value < 32 }) else {
            throw RestError.parse("\(what) '\(name.prefix(40))' holds a control character")
        }
        return name
    }

    /// A column and its JSON path; stops before `.`, `,`, `:`, `(`, `)`, `!` and the end.
    mutating func field() throws -> RestField {
        let stops: Set<Character> = [".", ",", ":", "(", ")", "!"]
        var field = RestField(column: try name(stoppingAt: stops, what: "column name"))
        while rest.hasPrefix("->") {
            let asText = skip("->>")
            if !asText { _ = skip("->") }
            let raw = try name(stoppingAt: stops, what: "JSON key")
            if let index = Int(raw), raw.first != "+" {
                field.steps.append(.init(key: .index(index), asText: asText))
            } else {
                field.steps.append(.init(key: .name(raw), asText: asText))
            }
        }
        return field
    }
}

extension StringProtocol where SubSequence == Substring {
    /// Without the spaces at either end (PostgREST ignores them around list items).
    var trimmingSpaces: Substring {
        var slice = self[...]
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return slice
    }
}
