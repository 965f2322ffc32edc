extension BridgeConfig {
    static func parseProcessors(_ node: ConfigNode, pipe: String, sinks allSinks: [SinkConfig]) throws
        -> [ProcessorConfig]
    {
        let items = try node.list()
        guard items.count <= 200 else { throw node.error("at most 200 processors per pipe") }
        return try items.map { item in
            try item.withKeys { keys in try parseProcessor(item, keys, pipe: pipe, sinks: allSinks) }
        }
    }

    private static func parseProcessor(
        _ item: ConfigNode, _ keys: ConfigKeys, pipe: String, sinks allSinks: [SinkConfig]
    )
        throws -> ProcessorConfig
    {
        let sinkNames = allSinks.map(\.name)
        let given = ["filter", "mask", "drop", "route"].compactMap { kind in keys[kind].map { (kind, $0) } }
        guard !given.isEmpty else {
            throw item.error("missing filter, mask, drop or route: each processor is one of them (one per list item)")
        }
        guard given.count == 1, keys.present.count == 1, let (kind, value) = given.first else {
            throw item.error("each processor is one of filter, mask, drop or route (one per list item)")
        }
        switch kind {
        case "filter":
            let text = try value.string()
            guard let language = item.registry.filterLanguage else {
                throw value.error("filter expressions are not available here: no filter language is registered")
            }
            do {
                return .filter(try language.compile(text))
            } catch {
                throw value.error("invalid filter: \(error) of \"\(text)\"")
            }
        case "mask":
            return try value.withKeys { mask in
                guard let columns = try mask["columns"]?.list(orCommaSeparated: true), !columns.isEmpty else {
                    throw value.error("missing columns: the columns to mask, e.g. {columns: [email], with: sha256}")
                }
                let method: MaskMethod = try enumValue(mask["with"], default: .sha256)
                return .mask(MaskConfig(columns: columns, method: method, tables: try tables(mask["tables"])))
            }
        case "drop":
            if case .mapping = value.node {
                return try value.withKeys { drop in
                    guard let columns = try drop["columns"]?.list(orCommaSeparated: true), !columns.isEmpty else {
                        throw value.error("missing columns: the columns to remove")
                    }
                    return .drop(DropConfig(columns: columns, tables: try tables(drop["tables"])))
                }
            }
            let columns = try value.list(orCommaSeparated: true)
            guard !columns.isEmpty else { throw value.error("empty: list the columns to remove") }
            return .drop(DropConfig(columns: columns))
        default:
            return try value.withKeys { route in
                var patterns = try tables(route["tables"]) ?? []
                patterns += try tables(route["table"]) ?? []
                guard !patterns.isEmpty else {
                    throw value.error(
                        "missing tables: the tables this route applies to, e.g. {tables: [public.orders], ...}")
                }
                var sinks: [String]?
                if let sinksNode = route["sinks"] {
                    let names = try sinksNode.list(orCommaSeparated: true)
                    for name in names where !sinkNames.contains(name) {
                        throw sinksNode.error(
                            "no sink named '\(name)' in this pipe; its sinks are: \(sinkNames.joined(separator: ", "))")
                    }
                    sinks = names
                }
                let destination = try route["topic"].map { try template($0, default: "", pipe: pipe) }
                guard sinks != nil || destination != nil else {
                    throw value.error("a route needs sinks, topic or both")
                }
                if let destination {
                    let routed = BridgeConfig.routedSinks(sinks, all: sinkNames)
                    for sink in allSinks where routed.contains(sink.name) {
                        if let problem = sink.settings.problem(withFixedDestination: destination) {
                            throw (route["topic"] ?? value).error("sink '\(sink.name)' \(problem)")
                        }
                    }
                }
                return .route(RouteConfig(tables: patterns, sinks: sinks, destination: destination))
            }
        }
    }

    static func routedSinks(_ sinks: [String]?, all: [String]) -> [String] { sinks ?? all }

    private static func tables(_ node: ConfigNode?) throws -> [TablePattern]? {
        guard let node else { return nil }
        let items: [ConfigNode]
        if case .scalar = node.node { items = [node] } else { items = try node.list() }
        return try items.map { item in
            let text = try item.string()
            guard let pattern = TablePattern(parsing: text) else {
                throw item.error("'\(text)' is not a table name: write schema.table, schema.* or table")
            }
            return pattern
        }
    }
}
