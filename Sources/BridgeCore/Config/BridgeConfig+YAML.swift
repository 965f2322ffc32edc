import Foundation
import Yams

extension BridgeConfig {
    /// Reads and validates a configuration file.
    public static func load(
        path: String, registry: ConfigRegistry, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> BridgeConfig {
        try parse(yaml: try readFile(path), registry: registry, environment: environment)
    }

    /// The text of a configuration file, or an error that says what to do.
    static func readFile(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(
                path: "", message: "cannot read config file \(path): check the path or pass --config FILE")
        }
    }

    /// The YAML tree of configuration text, with YAML errors as configuration errors.
    static func compose(_ yaml: String) throws -> Node {
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ConfigError(
                    path: "", message: "the configuration is empty: it needs at least postgres.url and pipes")
            }
            return node
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw ConfigError(path: "", message: "malformed YAML: \(describe(error))", line: line(of: error))
        }
    }

    /// The top-level sections of configuration text, with `postgres` and `state_dir` read
    /// (the others are left unread: their `${VAR}`s are expanded only when they are parsed).
    static func topLevel(yaml: String, registry: ConfigRegistry, environment: [String: String]) throws -> (
        sections: [String: ConfigNode], postgres: PostgresConfig, stateDirectory: String
    ) {
        let top = ConfigNode(node: try compose(yaml), path: "", environment: environment, registry: registry)
        return try top.withKeys { keys in
            guard let postgresNode = keys["postgres"] else {
                throw ConfigError(
                    path: "postgres", message: "missing: add postgres.url (e.g. postgresql://user@127.0.0.1:5432/app)")
            }
            let postgres = try postgresNode.parse(parsePostgres)
            let stateDirectory = try keys["state_dir"]?.string() ?? defaultStateDirectory
            // The sections `parse` reads (their `${VAR}`s are expanded only then).
            var sections: [String: ConfigNode] = [:]
            for section in ["pipes", "api", "wire", "ha"] { sections[section] = keys[section] }
            return (sections, postgres, stateDirectory)
        }
    }

    /// Parses and validates configuration text; `registry` holds the sink kinds it may use.
    public static func parse(yaml: String, registry: ConfigRegistry, environment: [String: String] = [:]) throws
        -> BridgeConfig
    {
        let (keys, postgres, stateDirectory) = try topLevel(yaml: yaml, registry: registry, environment: environment)
        let api = try keys["api"]?.parse(parseAPI)
        let wire = try keys["wire"]?.parse(parseWire)
        let ha = try keys["ha"]?.parse(parseHA)
        // With the HTTP API, pipes may also be created at run time (POST /v1/pipes); with the
        // wire protocol alone, pgbridge serves foreign tables only.
        guard let pipesNode = keys["pipes"] else {
            if api != nil || wire != nil {
                return BridgeConfig(
                    postgres: postgres, stateDirectory: stateDirectory, pipes: [], api: api, wire: wire, ha: ha)
            }
            throw ConfigError(
                path: "pipes", message: "missing: add at least one pipe (or an api section to create them at run time)")
        }
        let pipeNodes = try pipesNode.list()
        guard !pipeNodes.isEmpty || api != nil || wire != nil else {
            throw pipesNode.error("empty: add at least one pipe")
        }
        var pipes: [PipeConfig] = []
        var names: Set<String> = []
        var slots: [String: String] = [:]
        for node in pipeNodes {
            let pipe = try node.parse(parsePipe)
            guard names.insert(pipe.name).inserted else {
                throw node.error("pipe name '\(pipe.name)' is used twice: pipe names must be unique")
            }
            if case .replication(let source) = pipe.source {
                if let other = slots[source.slot] {
                    throw node.error(
                        "slot '\(source.slot)' is also used by pipe '\(other)': each pipe needs its own slot")
                }
                slots[source.slot] = pipe.name
            }
            pipes.append(pipe)
        }
        if let haNode = keys["ha"] {
            for pipe in pipes {
                guard case .replication(let source) = pipe.source,
                    source.snapshot == .initial || source.onSlotLost == .resnapshot
                else { continue }
                if source.onSlotLost == .resnapshot {
                    throw haNode.error(
                        "pipe '\(pipe.name)' has on_slot_lost: resnapshot, which ha does not support yet: a replica that takes over cannot continue a snapshot another one started. Use on_slot_lost: error with ha"
                    )
                }
                throw haNode.error(
                    "pipe '\(pipe.name)' has snapshot: initial, which ha does not support yet: a replica that takes over cannot continue a snapshot another one started. Run pgbridge once without ha until the snapshot is done, then remove snapshot: initial (it only acts when the slot is created) and add ha"
                )
            }
        }
        return BridgeConfig(
            postgres: postgres, stateDirectory: stateDirectory, pipes: pipes, api: api, wire: wire, ha: ha)
    }

    /// One pipe in the shape of a `pipes:` entry, given as JSON or YAML text (POST /v1/pipes);
    /// validated exactly like the configuration file. Error paths start at the pipe.
    public static func parsePipe(
        text: String, registry: ConfigRegistry, environment: [String: String] = [:], trust: ConfigTrust = .operatorFile
    ) throws -> PipeConfig {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigError(path: "", message: "the pipe is empty: it needs name, source and sinks")
            }
            root = node
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw ConfigError(path: "", message: "malformed JSON: \(describe(error))", line: line(of: error))
        }
        return try ConfigNode(node: root, path: "", environment: environment, trust: trust, registry: registry)
            .parse(parsePipe)
    }

    static func parsePostgres(_ node: ConfigNode, _ keys: ConfigKeys) throws -> PostgresConfig {
        guard let urlNode = keys["url"] else {
            throw node.error("missing url: add postgres.url (e.g. postgresql://user@127.0.0.1:5432/app)")
        }
        let url = try urlNode.string()
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") || url.contains("=") else {
            throw urlNode.error("expected a postgresql:// URL or a libpq key=value string")
        }
        return PostgresConfig(url: url)
    }

    static func parsePipe(_ node: ConfigNode, _ keys: ConfigKeys) throws -> PipeConfig {
        guard let nameNode = keys["name"] else { throw node.error("missing name: every pipe needs a name") }
        let name = try nameNode.string()
        guard Identifier.isSimple(name) else {
            throw nameNode.error(
                "'\(name)' is not a valid pipe name: use lower-case letters, digits and _ (at most 40)")
        }
        guard let sourceNode = keys["source"] else { throw node.error("missing source") }
        let source = try sourceNode.parse { try parseSource($0, $1, pipeName: name) }
        let format = try enumValue(keys["format"], default: EventFormat.native, what: "format")
        guard let sinksNode = keys["sinks"] else { throw node.error("missing sinks: add at least one sink") }
        let sinkNodes = try sinksNode.list()
        guard !sinkNodes.isEmpty else { throw sinksNode.error("empty: add at least one sink") }
        var sinks: [SinkConfig] = []
        for (index, sinkNode) in sinkNodes.enumerated() {
            let sink = try sinkNode.parse { try parseSink($0, $1, pipe: name, index: index, count: sinkNodes.count) }
            if sinks.contains(where: { $0.name == sink.name }) {
                throw sinkNode.error("sink name '\(sink.name)' is used twice in this pipe: give each sink its own name")
            }
            sinks.append(sink)
        }
        let deadLetter = try keys["dead_letter"]?.parse { try parseDeadLetter($0, $1, pipe: name) }
        let processors =
            try keys["processors"].map { try parseProcessors($0, pipe: name, sinks: sinks) } ?? []
        return PipeConfig(
            name: name, source: source, format: format, sinks: sinks, deadLetter: deadLetter, processors: processors)
    }

    static func parseSource(_ node: ConfigNode, _ keys: ConfigKeys, pipeName: String) throws -> SourceConfig {
        let kindNode = keys["kind"]
        let kind = try kindNode?.string() ?? "replication"
        switch kind {
        case "replication":
            guard let tablesNode = keys["tables"] else {
                throw node.error("missing tables: list the tables to capture, e.g. [public.orders, \"public.*\"]")
            }
            let tableNodes = try tablesNode.list()
            guard !tableNodes.isEmpty else { throw tablesNode.error("empty: list at least one table") }
            let tables = try tableNodes.map { tableNode -> TablePattern in
                let text = try tableNode.string()
                guard let pattern = TablePattern(parsing: text) else {
                    throw tableNode.error("'\(text)' is not a table name: write schema.table, schema.* or table")
                }
                return pattern
            }
            let slot = try keys["slot"]?.string() ?? ReplicationSourceConfig.defaultName(pipe: pipeName)
            guard Identifier.isSlotName(slot) else {
                throw keys["slot"]!.error(
                    "'\(slot)' is not a valid slot name: use lower-case letters, digits and _ (at most 63)")
            }
            let publication = try keys["publication"]?.string() ?? ReplicationSourceConfig.defaultName(pipe: pipeName)
            guard Identifier.isSlotName(publication) else {
                throw keys["publication"]!.error(
                    "'\(publication)' is not a valid publication name: use lower-case letters, digits and _ (at most 63)"
                )
            }
            var snapshot = SnapshotMode.never
            if let snapshotNode = keys["snapshot"] {
                let text = try snapshotNode.string()
                guard let mode = SnapshotMode(rawValue: text) else {
                    throw snapshotNode.error("unknown snapshot mode '\(text)'; expected never or initial")
                }
                snapshot = mode
            }
            let statusInterval = try keys["status_interval"]?.duration() ?? .seconds(10)
            guard statusInterval >= .milliseconds(100), statusInterval <= .seconds(30) else {
                throw keys["status_interval"]!.error(
                    "must be between 100ms and 30s (the server drops a silent client after wal_sender_timeout, 60s by default)"
                )
            }
            let messages = try keys["messages"]?.bool() ?? true
            let slotBusyTimeout = try keys["slot_busy_timeout"]?.duration() ?? .seconds(30)
            var continuousAggregates = ContinuousAggregateMode.view
            if let modeNode = keys["continuous_aggregates"] {
                let text = try modeNode.string()
                guard let mode = ContinuousAggregateMode(rawValue: text) else {
                    throw modeNode.error("unknown mode '\(text)'; expected view or drop")
                }
                continuousAggregates = mode
            }
            let reconcileInterval = try keys["reconcile_interval"]?.duration() ?? .seconds(30)
            guard reconcileInterval >= .seconds(1) else {
                throw keys["reconcile_interval"]!.error("must be at least 1s")
            }
            var snapshotRange: SnapshotRange?
            if let rangeNode = keys["snapshot_range"] {
                snapshotRange = try rangeNode.withKeys { range in
                    SnapshotRange(
                        start: try range["start"]?.string(), end: try range["end"]?.string(),
                        column: try range["column"]?.string())
                }
                guard snapshotRange?.start != nil || snapshotRange?.end != nil else {
                    throw rangeNode.error("give start, end or both (timestamps such as 2026-01-01T00:00:00Z)")
                }
            }
            let batchRows = try keys["snapshot_batch_rows"]?.int(range: 1...1_000_000) ?? 5000
            let heartbeat = try keys["heartbeat_interval"]?.duration() ?? .seconds(30)
            guard heartbeat == .zero || heartbeat >= .milliseconds(100) else {
                throw keys["heartbeat_interval"]!.error("must be 0 (off) or at least 100ms")
            }
            let maxLag = try keys["max_lag_bytes"].map { Int64(try $0.int(range: 1024...Int(Int64.max))) }
            var onSlotLost = SlotLostAction.error
            if let actionNode = keys["on_slot_lost"] {
                let text = try actionNode.string()
                guard let action = SlotLostAction(rawValue: text) else {
                    throw actionNode.error("unknown action '\(text)'; expected error or resnapshot")
                }
                onSlotLost = action
            }
            let receiveTimeout = try keys["receive_timeout"]?.duration() ?? .seconds(60)
            guard receiveTimeout >= .seconds(1), receiveTimeout > statusInterval else {
                throw keys["receive_timeout"]!.error(
                    "must be at least 1s and longer than status_interval (\(statusInterval)); the server's "
                        + "wal_sender_timeout (60s by default) is a good value")
            }
            return .replication(
                ReplicationSourceConfig(
                    tables: tables, slot: slot, publication: publication, snapshot: snapshot,
                    statusInterval: statusInterval, messages: messages, slotBusyTimeout: slotBusyTimeout,
                    continuousAggregates: continuousAggregates, reconcileInterval: reconcileInterval,
                    snapshotRange: snapshotRange, snapshotBatchRows: batchRows, heartbeatInterval: heartbeat,
                    maxLagBytes: maxLag, receiveTimeout: receiveTimeout, onSlotLost: onSlotLost))
        case "outbox":
            let channels = try parseChannels(keys, node: node, defaultChannel: "pgbridge")
            let batchRows = try keys["batch_rows"]?.int(range: 1...100_000) ?? 1000
            let pollInterval = try keys["poll_interval"]?.duration() ?? .seconds(5)
            return .outbox(OutboxSourceConfig(channels: channels, batchRows: batchRows, pollInterval: pollInterval))
        case "notify":
            let channels = try parseChannels(keys, node: node, defaultChannel: nil)
            return .notify(NotifySourceConfig(channels: channels))
        default:
            guard let registration = node.registry.source(kind) else {
                let kinds = ["replication", "outbox", "notify"] + node.registry.sources.map(\.kind)
                throw (kindNode ?? node).error(
                    "unknown source kind '\(kind)'; expected one of: \(kinds.joined(separator: ", "))")
            }
            return .message(try parseMessageSource(node, keys, registration: registration, pipe: pipeName))
        }
    }

    static func parseChannels(_ keys: ConfigKeys, node: ConfigNode, defaultChannel: String?) throws
        -> [String]
    {
        var channels: [String] = []
        if let one = keys["channel"] { channels.append(try one.string()) }
        if let many = keys["channels"] { channels += try many.list().map { try $0.string() } }
        if channels.isEmpty, let defaultChannel { channels = [defaultChannel] }
        guard !channels.isEmpty else { throw node.error("missing channels: list the NOTIFY channels to listen on") }
        for channel in channels where channel.isEmpty || channel.utf8.count > 63 {
            throw node.error("'\(channel)' is not a valid channel name (1 to 63 bytes)")
        }
        return channels
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _):
            return problem
        case .reader(let problem, _, _, _):
            return problem
        case .duplicatedKeysInMapping(let duplicates, _):
            return "duplicate keys: \(duplicates.joined(separator: ", "))"
        default:
            return "the file could not be parsed as YAML"
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }
}

extension TablePattern {
    /// Parses `schema.table`, `schema.*`, `table`, with optional double quotes around either part.
    public init?(parsing text: String) {
        let parts = Identifier.splitQualified(text)
        switch parts.count {
        case 1:
            guard let table = parts[0], table != "*" else { return nil }
            self.init(schema: "public", table: table)
        case 2:
            guard let schema = parts[0], let table = parts[1] else { return nil }
            self.init(schema: schema, table: table == "*" ? nil : table)
        default:
            return nil
        }
    }
}

/// Names pgbridge accepts for pipes, slots and publications.
public enum Identifier {
    /// Lower-case letters, digits and `_`, at most `maxLength` (pipe names: 40).
    public static func isSimple(_ s: String, maxLength: Int = 40) -> Bool {
        !s.isEmpty && s.count <= maxLength
            && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }

    static func isSlotName(_ s: String) -> Bool { isSimple(s, maxLength: 63) }

    /// Splits on dots outside double quotes; unquoted parts are folded to lower case like SQL.
    /// An empty part yields nil.
    static func splitQualified(_ text: String) -> [String?] {
        var parts: [String?] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        var chars = Array(text.trimmingCharacters(in: .whitespaces))
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "\"" {
                if quoted, i + 1 < chars.count, chars[i + 1] == "\"" {
                    current.append("\"")
                    i += 2
                    continue
                }
                quoted.toggle()
                wasQuoted = true
            } else if c == "." && !quoted {
                parts.append(current.isEmpty ? nil : (wasQuoted ? current : current.lowercased()))
                current = ""
                wasQuoted = false
            } else {
                current.append(c)
            }
            i += 1
        }
        if quoted { return [nil] }
        parts.append(current.isEmpty ? nil : (wasQuoted ? current : current.lowercased()))
        chars.removeAll()
        return parts
    }
}
