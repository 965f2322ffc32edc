import Foundation

/// Which librdkafka `properties` a Kafka sink may set. Some properties run commands
/// (`sasl.kerberos.kinit.cmd`), load code (`plugin.library.paths`, `ssl.engine.location`) or
/// read files (`*.location`, `sasl.kerberos.keytab`): with them, whoever writes a pipe runs code
/// as pgbridge on its host. The operator's configuration file may set them only with
/// `allow_unsafe_properties: true` (file reads stay allowed there); a pipe created through the
/// HTTP API may set tuning properties only.
enum KafkaPropertyPolicy {
    /// Tuning properties a pipe created through the API may set.
    static let tuning: Set<String> = [
        "acks", "request.required.acks", "linger.ms", "queue.buffering.max.ms", "queue.buffering.max.messages",
        "queue.buffering.max.kbytes", "batch.num.messages", "batch.size", "compression.type", "compression.codec",
        "compression.level", "message.max.bytes", "message.timeout.ms", "delivery.timeout.ms", "request.timeout.ms",
        "retries", "message.send.max.retries", "retry.backoff.ms", "retry.backoff.max.ms",
        "max.in.flight.requests.per.connection", "max.in.flight", "socket.timeout.ms", "socket.keepalive.enable",
        "socket.send.buffer.bytes", "socket.receive.buffer.bytes", "socket.nagle.disable", "reconnect.backoff.ms",
        "reconnect.backoff.max.ms", "topic.metadata.refresh.interval.ms", "metadata.max.age.ms", "partitioner",
        "sticky.partitioning.linger.ms", "enable.idempotence", "client.rack", "broker.address.family",
        "connections.max.idle.ms",
    ]

    /// Why a property is dangerous, or nil. `allowedInFile`: a file the operator wrote may read it.
    static func danger(_ name: String) -> (reason: String, allowedInFile: Bool)? {
        let key = name.lowercased()
        if key.hasSuffix(".cmd") { return ("runs a shell command", false) }
        if key.hasPrefix("plugin.") { return ("loads a library into pgbridge", false) }
        if key.hasPrefix("ssl.engine.") { return ("loads a library into pgbridge", false) }
        if key.hasSuffix(".location") || key == "sasl.kerberos.keytab" {
            return ("reads a file of pgbridge's host", true)
        }
        return nil
    }

    static func check(_ name: String, trust: ConfigTrust, allowUnsafe: Bool, node: ConfigNode) throws {
        switch trust {
        case .operatorFile:
            if let danger = danger(name), !danger.allowedInFile, !allowUnsafe {
                throw node.error(
                    "librdkafka property \(name) \(danger.reason): it is refused unless the sink sets "
                        + "allow_unsafe_properties: true (only do that for a command or library you trust)")
            }
        case .api:
            if let danger = danger(name) {
                throw node.error(
                    "librdkafka property \(name) \(danger.reason) and is never allowed in a pipe created through the API"
                )
            }
            guard tuning.contains(name) else {
                throw node.error(
                    "librdkafka property \(name) is not allowed in a pipe created through the API; allowed: "
                        + tuning.sorted().joined(separator: ", ")
                        + ". Put the pipe in the configuration file to set other properties")
            }
        }
    }
}

extension BridgeConfig {
    /// A file path of a pipe created through the API, made absolute (relative paths are taken
    /// from `stateDirectory`) and required to stay inside `stateDirectory`, symbolic links and
    /// `..` resolved.
    public static func confined(_ path: String, to stateDirectory: String, node: ConfigNode) throws -> String {
        let base = realPath(URL(fileURLWithPath: stateDirectory).standardizedFileURL.path)
        let absolute = path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
        let resolved = realPath(URL(fileURLWithPath: absolute).standardizedFileURL.path)
        guard path != "-", resolved == base || resolved.hasPrefix(base.hasSuffix("/") ? base : base + "/") else {
            throw node.error(
                "\(path) is outside state_dir (\(stateDirectory)): a pipe created through the API may only write files "
                    + "inside state_dir; use a relative path, or put the pipe in the configuration file")
        }
        return resolved
    }
}

/// `path` with every symbolic link of its longest existing prefix resolved (the rest, which does
/// not exist yet, is appended as it is).
func realPath(_ path: String) -> String {
    var existing = path
    var rest: [String] = []
    while existing != "/" && !existing.isEmpty {
        if let resolved = realpath(existing, nil) {
            defer { free(resolved) }
            return rest.reversed().reduce(String(cString: resolved)) { ($0 as NSString).appendingPathComponent($1) }
        }
        rest.append((existing as NSString).lastPathComponent)
        existing = (existing as NSString).deletingLastPathComponent
    }
    return "/" + rest.reversed().joined(separator: "/")
}
