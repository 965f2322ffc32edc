import Foundation

/// What `pgbridge slots` needs of a configuration file: the connection, the state directory and
/// which pipe reads which slot. Read without the other sections, so their `${VAR}`s need not
/// be set (a sink's password is none of `slots`' business).
public struct SlotsConfigView: Sendable {
    public var postgres: PostgresConfig
    public var stateDirectory: String
    /// Replication pipes and their slots.
    public var slots: [(pipe: String, slot: String)]

    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> SlotsConfigView
    {
        let root = try BridgeConfig.compose(try BridgeConfig.readFile(path))
        let top = ConfigNode(node: root, path: "", environment: environment)
        let keys = try top.mapping(allowed: ["postgres", "state_dir", "pipes", "api", "wire", "ha"])
        guard let postgresNode = keys["postgres"] else {
            throw ConfigError(
                path: "postgres", message: "missing: add postgres.url (e.g. postgresql://user@127.0.0.1:5432/app)")
        }
        var view = SlotsConfigView(
            postgres: try BridgeConfig.parsePostgres(postgresNode),
            stateDirectory: try keys["state_dir"]?.string() ?? BridgeConfig.defaultStateDirectory, slots: [])
        for pipe in try keys["pipes"]?.list() ?? [] {
            guard let name = pipe.node["name"]?.string, let source = pipe.node["source"] else { continue }
            guard (source["kind"]?.string ?? "replication") == "replication" else { continue }
            view.slots.append((name, source["slot"]?.string ?? "pgbridge_\(name)"))
        }
        return view
    }
}
