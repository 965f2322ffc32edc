import BridgeCore
import Foundation
import Logging
import Testing

@testable import PostgresSource

/// One publication, several slots (one per sink or format) is a normal setup: pipes that start
/// together must not fail because another one created the publication or added a table first.
@Suite("Pipes sharing a publication", .enabled(if: TestEnvironment.hasPostgres))
struct SharedPublicationTests {
    @Test func pipesThatShareAPublicationStartTogether() async throws {
        let db = try TestDatabase(prefix: "shared_pub")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
            CREATE TABLE c (id int PRIMARY KEY); CREATE TABLE d (id int PRIMARY KEY);
            """)
        let directory = try TestEnvironment.scratchDirectory("shared_pub")
        let tablesOfPipe = [
            ["public.a"], ["public.b"], ["public.c", "public.d"], ["public.a", "public.b", "public.d"],
        ]
        let sources = tablesOfPipe.enumerated().map { index, tables in
            ReplicationSource(
                pipeName: "p\(index)",
                config: ReplicationSourceConfig(
                    tables: tables.compactMap { TablePattern(parsing: $0) }, slot: "shared_\(db.name)_\(index)",
                    publication: "shared"),
                postgres: PostgresConfig(url: db.url), stateDirectory: directory, logger: InProcessPipe.testLogger)
        }
        // Each round starts from no publication, so every pipe races to create it and add tables.
        for round in 0..<12 {
            try db.sql("DROP PUBLICATION IF EXISTS shared")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for source in sources {
                    group.addTask {
                        do {
                            _ = try await Blocking.run { try source.prepare() }
                        } catch {
                            throw TestFailure("round \(round), pipe \(source.pipeName): \(error)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            let published = try db.sql(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = 'shared' ORDER BY 1"
            ).compactMap { $0[0] }
            #expect(published == ["a", "b", "c", "d"], "round \(round)")
        }
    }
}
