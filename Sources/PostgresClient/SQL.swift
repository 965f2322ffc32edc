/// SQL quoting for identifiers and literals that cannot be bound as parameters.
public enum SQL {
    /// Always quoted: an unquoted name can be a keyword (`user`, `order`) and mean something else.
    public static func identifier(_ name: String) -> String {
        "\"" + escaped(name, UInt8(ascii: "\"")) { $0 == UInt8(ascii: "\"") } + "\""
    }

    /// `text` with `escape` written before every byte that `needs` it (no copy when none does).
    /// Names and values are quoted for every request: this stays off Foundation's string search.
    private static func escaped(_ text: String, _ escape: UInt8, where needs: (UInt8) -> Bool) -> String {
        guard text.utf8.contains(where: needs) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 8)
        for byte in text.utf8 {
            if needs(byte) { out.append(escape) }
            out.append(byte)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Quotes only names that need it (case, characters, keywords): for messages, not for SQL
    /// pgbridge runs.
    public static func readable(_ name: String) -> String {
        let simple =
            !name.isEmpty && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
            && !(name.utf8.first.map { $0 >= 48 && $0 <= 57 } ?? false) && !reservedWords.contains(name)
        return simple ? name : identifier(name)
    }

    private static let reservedWords: Set<String> = [
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case", "cast", "check",
        "collate", "column", "constraint", "create", "current_catalog", "current_date", "current_role", "current_time",
        "current_timestamp", "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except",
        "false", "fetch", "for", "foreign", "from", "grant", "group", "having", "in", "initially", "intersect", "into",
        "lateral", "leading", "limit", "localtime", "localtimestamp", "not", "null", "offset", "on", "only", "or",
        "order", "placing", "primary", "references", "returning", "select", "session_user", "some", "symmetric",
        "table", "then", "to", "trailing", "true", "union", "unique", "user", "using", "variadic", "when", "where",
        "window", "with",
    ]

    /// A `text[]` literal (for binding as a parameter).
    public static func textArray(_ values: [String]) -> String {
        "{"
            + values.map {
                "\"" + escaped($0, UInt8(ascii: "\\")) { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") } + "\""
            }
            .joined(separator: ",") + "}"
    }

    public static func literal(_ value: String) -> String {
        "'" + escaped(value, UInt8(ascii: "'")) { $0 == UInt8(ascii: "'") } + "'"
    }

    /// Parses a one-dimensional `text[]` as the server sends it (`{a,"b c"}`).
    public static func parseTextArray(_ text: String) -> [String] {
        var items: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        var started = false
        for character in text.dropFirst().dropLast() {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
                started = true
            } else if character == ",", !quoted {
                items.append(current)
                current = ""
                started = false
            } else {
                current.append(character)
                started = true
            }
        }
        if started || !current.isEmpty { items.append(current) }
        return items
    }
}
