import Foundation
import Glibc

@testable import PostgresClient
@testable import PostgresSource

/// A throwaway primary and its asynchronous streaming standby (`pg_basebackup -R`), for failover
/// tests: the primary can be killed and the standby promoted. Driven by scripts/lib/pg-pair.sh.
final class PostgresPair: @unchecked Sendable {
    // @unchecked Sendable: used by one test at a time.
    let directory: String
    let primaryPort: Int
    let standbyPort: Int
    private static var script: String? { TestEnvironment.environment["PGBRIDGE_TEST_PG_PAIR"] }
    static var isAvailable: Bool { script != nil && TestEnvironment.hasBinary }

    init(name: String) throws {
        guard let tmp = TestEnvironment.environment["PGBRIDGE_TEST_TMP"] else {
            throw TestFailure("PGBRIDGE_TEST_TMP is not set: run scripts/test")
        }
        directory = "\(tmp)/pairs/\(name)-\(UUID().uuidString.prefix(6).lowercased())"
        primaryPort = try Self.freePort()
        standbyPort = try Self.freePort()
        try run("primary", "\(directory)/primary", String(primaryPort))
    }

    func url(port: Int, database: String = "postgres") -> String {
        "postgresql://postgres@127.0.0.1:\(port)/\(database)"
    }

    var primaryURL: String { url(port: primaryPort) }
    var standbyURL: String { url(port: standbyPort) }

    func startStandby() throws {
        try run("standby", "\(directory)/standby", String(standbyPort), String(primaryPort))
    }

    /// Starts the (already created) standby again after `stopStandby`.
    func restartStandby() throws { try run("start", "\(directory)/standby", String(standbyPort)) }
    func stopStandby() throws { try run("stop", "\(directory)/standby") }
    func killPrimary() throws { try run("kill", "\(directory)/primary") }
    /// Stops the primary (fast shutdown) and starts it again on the same port.
    func restartPrimary() throws { try run("start", "\(directory)/primary", String(primaryPort)) }
    func promoteStandby() throws { try run("promote", "\(directory)/standby") }

    /// Waits until the standby has replayed everything the primary has written so far.
    func waitForStandbyToCatchUp() async throws {
        let primary = try PGConnection(url: primaryURL, mode: .normal)
        let target = try primary.execute("SELECT pg_current_wal_lsn()::text").string(0, 0) ?? ""
        let standby = try PGConnection(url: standbyURL, mode: .normal)
        try await waitFor("the standby to replay \(target)", timeout: .seconds(60)) {
            try standby.execute("SELECT pg_last_wal_replay_lsn() >= '\(target)'::pg_lsn").string(0, 0) == "t"
        }
    }

    func destroy() {
        for node in ["primary", "standby"] { _ = try? run("destroy", "\(directory)/\(node)") }
    }

    private func run(_ arguments: String...) throws {
        guard let script = Self.script else { throw TestFailure("PGBRIDGE_TEST_PG_PAIR is not set: run scripts/test") }
        let result = try TestEnvironment.shell(([script] + arguments).map { "'\($0)'" }.joined(separator: " "))
        guard result.status == 0 else {
            throw TestFailure("pg-pair.sh \(arguments.joined(separator: " ")) failed: \(result.output.suffix(2000))")
        }
    }

    /// A port nothing listens on right now (bound to 0 and released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TestFailure("cannot find a free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
