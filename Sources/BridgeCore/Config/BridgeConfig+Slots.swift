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
        let (keys, postgres, stateDirectory) = try BridgeConfig.topLevel(
            yaml: try BridgeConfig.readFile(path), registry: ConfigRegistry(sinks: []), environment: environment)
        var view = SlotsConfigView(postgres: postgres, stateDirectory: stateDirectory, slots: [])
        for pipe in try keys["pipes"]?.list() ?? [] {
            guard let name = pipe.node["name"]?.string, let source = pipe.node["source"] else { continue }
            guard (source["kind"]?.string ?? "replication") == "replication" else { continue }
            view.slots.append((name, source["slot"]?.string ?? ReplicationSourceConfig.defaultName(pipe: name)))
        }
        return view
    }
}
