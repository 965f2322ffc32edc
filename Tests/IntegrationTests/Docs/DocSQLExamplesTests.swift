import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

/// The SQL examples of pages whose SQL needs only PostgreSQL: each block runs, after the
/// page's setup, in a transaction that is rolled back (so roles and objects it creates leave no
/// trace). Blocks marked illustrative are skipped.
@Suite(
    "Documentation SQL examples",
    .enabled(if: ProcessInfo.processInfo.environment["PGBRIDGE_TEST_PG_URL"] != nil))
struct DocSQLExamplesTests {
    /// What a page's SQL expects to exist (the page says so in its text).
    static let setups: [String: String] = [
        "docs/trigger-capture.md": """
        CREATE TABLE public.orders (id int PRIMARY KEY);
        CREATE TABLE public.payments (id int PRIMARY KEY);
        CREATE TABLE public.users (id int PRIMARY KEY, email text, name text);
        """,
        "docs/getting-started.md": "CREATE TABLE public.orders (id int PRIMARY KEY);",
        "docs/http-api.md": """
        DO $$ BEGIN CREATE ROLE pgbridge LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
        """,
    ]

    @Test(arguments: setups.keys.sorted())
    func sqlBlocksRun(page: String) throws {
        let server = try #require(ProcessInfo.processInfo.environment["PGBRIDGE_TEST_PG_URL"])
        let admin = try PGConnection(url: server, mode: .normal)
        let name = "doc_\(UUID().uuidString.prefix(8).lowercased())"
        try admin.execute("CREATE DATABASE \(name)")
        defer { _ = try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        let slash = try #require(server.range(of: "/", options: .backwards))
        let url = String(server[..<slash.upperBound]) + name
        let connection = try PGConnection(url: url, mode: .normal)
        let blocks = try DocPages.blocks(of: page).filter { $0.language == "sql" && $0.illustrative == nil }
        #expect(!blocks.isEmpty, "\(page) has no SQL block to run")
        for block in blocks {
            do {
                try connection.execute("BEGIN; \(Self.setups[page] ?? "")\n\(block.text)\n; ROLLBACK")
            } catch {
                _ = try? connection.execute("ROLLBACK")
                Issue.record("\(page):\(block.line): the SQL example fails: \(error)")
            }
        }
    }
}
