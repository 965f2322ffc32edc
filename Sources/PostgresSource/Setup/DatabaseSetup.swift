import BridgeCore
import Foundation
import PostgresClient

/// `pgbridge setup`: installs or upgrades the pgbridge SQL objects without CREATE EXTENSION.
public enum DatabaseSetup {
    public enum Outcome: Sendable, Equatable {
        case installed(version: String)
        case alreadyCurrent(version: String)
        /// Installed with CREATE EXTENSION: `ALTER EXTENSION pgbridge UPDATE` upgrades it.
        case managedByExtension(version: String)
    }

    /// Scripts from one version to the next, applied in order after the 0.1 install script.
    static let upgrades: [(from: String, to: String, sql: String)] = [
        ("0.1", "0.2", ExtensionSQL.upgrade_0_1_to_0_2),
        ("0.2", "0.3", ExtensionSQL.upgrade_0_2_to_0_3),
        ("0.3", "0.4", ExtensionSQL.upgrade_0_3_to_0_4),
    ]

    public static func run(postgres: PostgresConfig) async throws -> Outcome {
        try await Blocking.run {
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            if let version = try connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgbridge'")
                .string(0, 0)
            {
                return .managedByExtension(version: version)
            }
            try connection.execute("BEGIN")
            do {
                // One installer at a time (replicas starting together).
                try connection.execute("SELECT pg_advisory_xact_lock(hashtext('pgbridge setup'))")
                try connection.execute("CREATE SCHEMA IF NOT EXISTS pgbridge")
                try connection.execute("CREATE TABLE IF NOT EXISTS pgbridge.setup (version text NOT NULL)")
                var current = try connection.execute("SELECT version FROM pgbridge.setup").string(0, 0)
                let outcome: Outcome
                if current == nil {
                    try connection.execute(script(ExtensionSQL.install_0_1))
                    try connection.execute("INSERT INTO pgbridge.setup VALUES ('0.1')")
                    current = "0.1"
                    outcome = .installed(version: ExtensionSQL.version)
                } else {
                    outcome = .alreadyCurrent(version: current!)
                }
                var upgraded = false
                for step in upgrades where step.from == current {
                    try connection.execute(script(step.sql))
                    try connection.execute("UPDATE pgbridge.setup SET version = $1", [step.to])
                    current = step.to
                    upgraded = true
                }
                // X-Commit-LSN of REST-proxy writes reads the commit record with pg_walinspect
                // (a contrib extension; only a superuser may create it: skipped otherwise).
                try connection.execute("SAVEPOINT walinspect")
                do {
                    try connection.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
                } catch {
                    try connection.execute("ROLLBACK TO SAVEPOINT walinspect")
                }
                try connection.execute("COMMIT")
                return upgraded ? .installed(version: current ?? ExtensionSQL.version) : outcome
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// The extension script without psql's `\echo … \quit` guard.
    static func script(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\\echo") }
            .joined(separator: "\n")
    }
}
