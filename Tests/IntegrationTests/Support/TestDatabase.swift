import BridgeCore
import Foundation

@testable import PostgresClient
@testable import PostgresSource

/// A throwaway database on a real PostgreSQL cluster, with a plain SQL client.
final class TestDatabase: @unchecked Sendable {
    // @unchecked Sendable: tests use one TestDatabase from one task at a time; `lock` serialises
    // the connection anyway.
    let name: String
    let url: String
    let serverURL: String
    private var connection: PGConnection
    private let lock = NSLock()

    init(prefix: String, serverURL: String? = TestEnvironment.postgresURL) throws {
        guard let serverURL else { throw TestFailure("PGBRIDGE_TEST_PG_URL is not set: run scripts/test") }
        self.serverURL = serverURL
        name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try PGConnection(url: serverURL, mode: .normal)
        try admin.execute("CREATE DATABASE \(name)")
        url = TestEnvironment.url(serverURL, database: name)
        connection = try PGConnection(url: url, mode: .normal)
    }

    /// Runs statements; returns the rows of the last one as text.
    @discardableResult
    func sql(_ statement: String) throws -> [[String?]] {
        lock.lock()
        defer { lock.unlock() }
        if connection.isBroken { connection = try PGConnection(url: url, mode: .normal) }
        let result = try connection.execute(statement)
        return (0..<result.rowCount).map { row in (0..<result.columnCount).map { result.string(row, $0) } }
    }

    /// SQL that creates each role (a name, then its options: `"x LOGIN REPLICATION"`) unless it
    /// exists: roles belong to the cluster, and tests in parallel may create the same one.
    static func createRoles(_ roles: String...) -> String {
        roles.map {
            "DO $$ BEGIN CREATE ROLE \($0); EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
        }.joined(separator: "\n")
    }

    func value(_ statement: String) throws -> String? {
        try sql(statement).first?.first ?? nil
    }

    func reconnect() throws {
        lock.lock()
        defer { lock.unlock() }
        connection = try PGConnection(url: url, mode: .normal)
    }

    /// Drops the database's slots (so WAL is released), the database, and then `roles` (cluster
    /// objects a test created for it).
    func drop(roles: [String] = []) {
        lock.lock()
        defer { lock.unlock() }
        guard let admin = try? PGConnection(url: serverURL, mode: .normal) else { return }
        // A walsender that is still shutting down keeps its slot active for a moment.
        for _ in 0..<50 {
            _ = try? admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '\(name)' AND NOT active"
            )
            let left = try? admin.execute("SELECT count(*) FROM pg_replication_slots WHERE database = '\(name)'")
                .string(0, 0)
            if left == "0" { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        _ = try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        for role in roles { _ = try? admin.execute("DROP ROLE IF EXISTS \(role)") }
    }

    func slotConfirmedLSN(_ slot: String) throws -> LSN? {
        try value("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '\(slot)'").flatMap {
            LSN($0)
        }
    }
}
