import BridgeCore
import Logging

public struct FileSinkConfig: SinkSettings {
    /// File path, or `-` for standard output.
    public var path: String
    /// fsync after each written group of batches (default true; stdout is never fsynced).
    public var fsync: Bool

    public init(path: String, fsync: Bool = true) {
        self.path = path
        self.fsync = fsync
    }
}

extension FileSink {
    /// `kind: file`: `path` (or `-` for stdout) and `fsync`; also the default dead-letter kind.
    public static let registration = SinkRegistration(
        kind: "file", takesDeadLetters: true,
        parse: { node, keys, _ in try parse(node, keys) },
        make: { settings, _, context in
            FileSink(config: settings, logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys) throws -> FileSinkConfig {
        guard let pathNode = keys["path"] else {
            throw node.error("missing path: a file path, or \"-\" for stdout")
        }
        var path = try pathNode.string()
        guard !path.isEmpty else { throw pathNode.error("empty path: a file path, or \"-\" for stdout") }
        if case .api(let stateDirectory) = node.trust {
            path = try BridgeConfig.confined(path, to: stateDirectory, node: pathNode)
        }
        return FileSinkConfig(path: path, fsync: try keys["fsync"]?.bool() ?? true)
    }
}
