extension BridgeConfig {
    /// A message source: the keys every kind has (`format`, `table`, `key`), then the kind's own.
    static func parseMessageSource(
        _ node: ConfigNode, _ keys: ConfigKeys, registration: SourceRegistration, pipe: String
    ) throws -> MessageSourceConfig {
        let format = try enumValue(keys["format"], default: MessageFormat.json, what: "message format")
        let table = try keys["table"]?.string() ?? registration.defaultTable
        let allowed = Set(registration.placeholders + ["pipe"])
        var rest = Substring(table)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw (keys["table"] ?? node).error("'\(table)' has a { without its }")
            }
            let name = String(rest[rest.index(after: open)..<close])
            guard allowed.contains(name) else {
                throw (keys["table"] ?? node).error(
                    "'{\(name)}' is not a placeholder of a \(registration.kind) source; use \(allowed.sorted().map { "{\($0)}" }.joined(separator: ", "))"
                )
            }
            rest = rest[rest.index(after: close)...]
        }
        guard !table.isEmpty, table.split(separator: ".", omittingEmptySubsequences: false).count <= 2 else {
            throw (keys["table"] ?? node).error("'\(table)' is not a table name: write schema.table or table")
        }
        var key: [String]?
        if let keyNode = keys["key"] {
            let fields = try keyNode.list(orCommaSeparated: true)
            guard !fields.isEmpty, fields.allSatisfy({ !$0.isEmpty }) else {
                throw keyNode.error("empty: name the fields of a message that make its key, e.g. [device, time]")
            }
            guard Set(fields).count == fields.count else { throw keyNode.error("a key field is named twice") }
            key = fields
        }
        if format == .native, keys["table"] != nil || key != nil {
            throw (keys["table"] ?? keys["key"] ?? node).error(
                "format native carries each change's own table and key: remove table and key")
        }
        if format == .debezium, keys["table"] != nil {
            throw keys["table"]!.error(
                "format debezium carries each change's own table (source.schema, source.table): remove table")
        }
        let settings = try registration.parse(node, keys, pipe)
        return MessageSourceConfig(kind: registration.kind, settings: settings, format: format, table: table, key: key)
    }
}
