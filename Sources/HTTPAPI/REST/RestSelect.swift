/// One item of `select=`: `*`, `alias:field::cast`, an aggregate (`count()`, `amount.sum()`),
/// or an embedded resource (`alias:table!hint!inner(items)`, `...table(items)`).
indirect enum RestSelectItem: Sendable, Equatable {
    case star
    case field(RestField, alias: String?, cast: String?)
    case aggregate(function: String, field: RestField?, alias: String?, cast: String?)
    case embed(RestEmbed)

    static let aggregateFunctions: Set<String> = ["count", "sum", "avg", "min", "max"]

    /// Parses a whole `select=` value.
    static func list(_ text: Substring) throws -> [RestSelectItem] {
        guard !text.isEmpty else { return [.star] }
        return try RestLists.split(text).map { try item($0.trimmingSpaces) }
    }

    static func item(_ text: Substring) throws -> RestSelectItem {
        if text == "*" { return .star }
        var scanner = RestScanner(text)
        var spread = false
        if scanner.skip("...") { spread = true }
        // `alias:` (one colon, not a cast's two)
        var alias: String?
        if let name = try? scanner.name(stoppingAt: [":", "(", ")", ",", "!", "."], what: "alias"),
            scanner.peek == ":", !scanner.rest.hasPrefix("::")
        {
            _ = scanner.skip(":")
            alias = name
        } else {
            scanner = RestScanner(text)
            if spread { _ = scanner.skip("...") }
        }
        if scanner.rest.hasPrefix("count()") {
            _ = scanner.skip("count()")
            let cast = try castSuffix(&scanner, in: text)
            return .aggregate(function: "count", field: nil, alias: alias, cast: cast)
        }
        let field = try scanner.field()
        if scanner.peek == "(" || scanner.peek == "!" {
            guard field.steps.isEmpty else {
                throw RestError.parse("'\(text.prefix(60))': an embedded resource is a table name, not a JSON path")
            }
            return .embed(try RestEmbed.parse(name: field.column, alias: alias, spread: spread, &scanner, in: text))
        }
        if spread { throw RestError.parse("'...' spreads an embedded resource: ...table(columns)") }
        if scanner.skip(".") {
            // An aggregate: `amount.sum()`.
            let function = try scanner.name(stoppingAt: ["("], what: "aggregate")
            guard aggregateFunctions.contains(function), scanner.skip("()") else {
                throw RestError.parse(
                    "'\(text.prefix(60))': after a column's dot comes an aggregate: sum(), avg(), min(), max() or count()"
                )
            }
            let cast = try castSuffix(&scanner, in: text)
            return .aggregate(function: function, field: field, alias: alias, cast: cast)
        }
        let cast = try castSuffix(&scanner, in: text)
        return .field(field, alias: alias, cast: cast)
    }

    /// Multi-word type names a cast may use; single words are checked by their characters.
    static let multiWordTypes: Set<String> = [
        "double precision", "character varying", "bit varying", "timestamp with time zone",
        "timestamp without time zone", "time with time zone", "time without time zone",
    ]

    /// `::type` at the end of an item (nil without one).
    static func castSuffix(_ scanner: inout RestScanner, in text: Substring) throws -> String? {
        guard scanner.skip("::") else {
            guard scanner.atEnd else {
                throw RestError.parse("unexpected '\(scanner.rest.prefix(30))' in the select item '\(text.prefix(60))'")
            }
            return nil
        }
        let type = String(scanner.rest.trimmingSpaces)
        guard isSafeTypeName(type) else {
            throw RestError.parse(
                "'\(type.prefix(40))' is not a type name a cast can use (letters, digits and _, optionally [])")
        }
        return type
    }

    static func isSafeTypeName(_ type: String) -> Bool {
        var base = Substring(type)
        if base.hasSuffix("[]") { base = base.dropLast(2) }
        if multiWordTypes.contains(String(base)) { return true }
        guard let first = base.utf8.first, !(48...57).contains(first), base.utf8.count <= 63 else { return false }
        return base.utf8.allSatisfy {
            ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95
        }
    }
}

/// An embedded resource in `select=`.
struct RestEmbed: Sendable, Equatable {
    var name: String
    var alias: String?
    /// `!hint`: a foreign key name or a column, when several relationships exist.
    var hint: String?
    /// `!inner`: only parent rows with a related row.
    var inner = false
    /// `...`: the related row's columns go into the parent object.
    var spread = false
    var items: [RestSelectItem] = []

    var outputName: String { alias ?? name }

    static func parse(
        name: String, alias: String?, spread: Bool, _ scanner: inout RestScanner, in text: Substring
    ) throws -> RestEmbed {
        var embed = RestEmbed(name: name, alias: alias, spread: spread)
        while scanner.skip("!") {
            let word = try scanner.name(stoppingAt: ["!", "("], what: "embedding hint")
            if word == "inner" {
                embed.inner = true
            } else if word == "left" {
                embed.inner = false
            } else {
                guard embed.hint == nil else {
                    throw RestError.parse("'\(text.prefix(60))' has two hints: use one, e.g. table!fk_name")
                }
                embed.hint = word
            }
        }
        guard scanner.peek == "(", scanner.rest.hasSuffix(")") else {
            throw RestError.parse("'\(text.prefix(60))': an embedded resource lists its columns: \(name)(*)")
        }
        let inner = scanner.rest.dropFirst().dropLast()
        embed.items = try RestSelectItem.list(inner)
        return embed
    }
}
