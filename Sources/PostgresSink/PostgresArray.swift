/// PostgreSQL's text form of a one-dimensional `text[]`, for the pending ids of
/// `pgbridge.sink_positions`.
enum PostgresArray {
    static func literal(_ items: [String]) -> String {
        "{"
            + items.map {
                "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                    + "\""
            }
            .joined(separator: ",") + "}"
    }

    /// Parses `{a,"b c"}` (what the server sends for text[]).
    static func parse(_ text: String) -> [String] {
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
