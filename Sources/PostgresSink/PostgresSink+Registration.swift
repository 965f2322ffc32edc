import BridgeCore

extension PostgresSink {
    /// `kind: postgres`: `url`, `table`, `mode`, `columns`, `create_tables`, `on_chunk_dropped`,
    /// `on_new_column`, `copy_format`. Not a dead-letter target: dead letters are not changes to apply.
    public static let registration = SinkRegistration(
        kind: "postgres", takesDeadLetters: false,
        parse: { node, keys, context in try parse(node, keys, pipe: context.pipe) },
        make: { settings, sink, context in
            PostgresSink(
                config: settings, pipe: context.pipe, sink: sink.name, source: context.source,
                logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys, pipe: String) throws -> PostgresSinkConfig {
        guard let urlNode = keys["url"] else {
            throw node.error("missing url: the target database, e.g. postgresql://pgbridge@replica:5432/app")
        }
        let url = try urlNode.string()
        guard url.hasPrefix("postgresql://") || url.hasPrefix("postgres://") else {
            throw urlNode.error("expected a postgresql:// URL such as postgresql://pgbridge@replica:5432/app")
        }
        var config = PostgresSinkConfig(
            url: url, table: try BridgeConfig.template(keys["table"], default: "{schema}.{table}", pipe: pipe))
        config.mode = try BridgeConfig.enumValue(keys["mode"], default: .apply)
        config.columns = try BridgeConfig.enumValue(keys["columns"], default: .json)
        if keys["columns"] != nil, config.mode != .append {
            throw keys["columns"]!.error("columns applies to mode: append only")
        }
        config.createTables = try keys["create_tables"]?.bool() ?? false
        config.onChunkDropped = try BridgeConfig.enumValue(keys["on_chunk_dropped"], default: .ignore)
        config.onNewColumn = try BridgeConfig.enumValue(keys["on_new_column"], default: .deadLetter)
        config.copyFormat = try BridgeConfig.enumValue(keys["copy_format"], default: .text)
        if config.table.dependsOnRowValues {
            throw (keys["table"] ?? node).error(
                "the table may use {schema}, {table}, {db} and {pipe}, not row values: one target table per source table"
            )
        }
        return config
    }
}
