import Foundation

/// High availability (`ha:` section): several replicas run the same configuration, and each
/// pipe is owned by one of them at a time through a PostgreSQL advisory lock.
public struct HAConfig: Sendable {
    /// How this replica is named in pipe statuses and in `pg_stat_activity`
    /// (`application_name` `pgbridge:<replica_id>`).
    public var replicaID: String
    /// How often a standby tries to take a pipe over.
    public var lockPollInterval: Duration

    public init(replicaID: String = HAConfig.defaultReplicaID, lockPollInterval: Duration = .seconds(1)) {
        self.replicaID = replicaID
        self.lockPollInterval = lockPollInterval
    }

    /// `<hostname>-<pid>`.
    public static var defaultReplicaID: String {
        "\(ProcessInfo.processInfo.hostName.split(separator: ".").first ?? "pgbridge")-\(ProcessInfo.processInfo.processIdentifier)"
    }
}

extension BridgeConfig {
    static func parseHA(_ node: ConfigNode, _ keys: ConfigKeys) throws -> HAConfig {
        var ha = HAConfig()
        if let id = keys["replica_id"] {
            let text = try id.string()
            guard !text.isEmpty, text.utf8.count <= 48, text.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw id.error("expected 1 to 48 printable ASCII characters without spaces, e.g. the host name")
            }
            ha.replicaID = text
        }
        ha.lockPollInterval = try keys["lock_poll_interval"]?.duration() ?? ha.lockPollInterval
        guard ha.lockPollInterval >= .milliseconds(100), ha.lockPollInterval <= .seconds(60) else {
            throw keys["lock_poll_interval"]!.error("must be between 100ms and 60s")
        }
        return ha
    }
}
