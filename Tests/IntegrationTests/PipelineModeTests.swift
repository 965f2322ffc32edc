import Foundation
import Testing

@testable import PostgresClient

/// libpq's pipeline mode as PGConnection uses it (the REST proxy's one round trip per request),
/// against a real server.
@Suite(.serialized) struct PipelineModeTests {
    @Test func resultsComeBackInOrderAndPreparedStatementsAreParsedOnce() throws {
        let database = try TestDatabase(prefix: "pipeline")
        defer { database.drop() }
        let connection = try PGConnection(url: database.url, mode: .normal)
        let statements: [PGConnection.PipelinedStatement] = [
            .init("BEGIN", preparedName: "test_begin"),
            .init("SELECT $1::int + 1", ["41"]),
            .init("SELECT $1::text || $2::text", ["a", nil]),
            .init("SELECT set_config('application_name', $1, true)", ["piped"], preparedName: "test_settings"),
            .init("SELECT current_setting('application_name')"),
            .init("COMMIT", preparedName: "test_commit"),
        ]
        for _ in 0..<3 {
            let results = try connection.pipeline(statements)
            #expect(results.count == 6)
            #expect(results[1].string(0, 0) == "42")
            #expect(results[2].string(0, 0) == nil)
            #expect(results[4].string(0, 0) == "piped")
        }
        // Each named statement was prepared once, on the first run.
        let prepared = try connection.execute(
            "SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements WHERE name LIKE 'test_%'")
        #expect(prepared.string(0, 0) == "test_begin,test_commit,test_settings")
        // The setting was local to the committed transaction.
        #expect(try connection.execute("SELECT current_setting('application_name')").string(0, 0) == "pgbridge")
    }

    @Test func aFailedStatementIsNamedAndNothingAfterItRuns() throws {
        let database = try TestDatabase(prefix: "pipeline")
        defer { database.drop() }
        try database.sql("CREATE TABLE marks (id int PRIMARY KEY)")
        let connection = try PGConnection(url: database.url, mode: .normal)
        do {
            _ = try connection.pipeline([
                .init("BEGIN", preparedName: "failing_begin"),
                .init("INSERT INTO marks VALUES (1)"),
                .init("SELECT CAST($1::text AS integer)", ["not a number"]),
                .init("INSERT INTO marks VALUES (2)"),
                .init("COMMIT"),
            ])
            Issue.record("the pipeline should have failed")
        } catch let failure as PGConnection.PipelineFailure {
            #expect(failure.index == 2)
            #expect(failure.error.sqlState == "22P02")
            #expect(failure.error.message.contains("not a number"))
        }
        // The explicit transaction is left aborted; after a rollback the connection works, and
        // neither insert is there (the one before the failure is rolled back, the one after never ran).
        try connection.execute("ROLLBACK")
        #expect(!connection.isBroken)
        #expect(try connection.execute("SELECT count(*) FROM marks").string(0, 0) == "0")
        // The BEGIN prepared before the failure stays prepared: it is used again, not re-parsed.
        let results = try connection.pipeline([
            .init("BEGIN", preparedName: "failing_begin"), .init("INSERT INTO marks VALUES (3)"), .init("COMMIT"),
        ])
        #expect(results.count == 3)
        #expect(try connection.execute("SELECT string_agg(id::text, ',') FROM marks").string(0, 0) == "3")
    }

    @Test func aLostConnectionIsReportedAsSuch() throws {
        let database = try TestDatabase(prefix: "pipeline")
        defer { database.drop() }
        let connection = try PGConnection(url: database.url, mode: .normal)
        let pid = try connection.execute("SELECT pg_backend_pid()").string(0, 0) ?? ""
        try database.sql("SELECT pg_terminate_backend(\(pid))")
        Thread.sleep(forTimeInterval: 0.2)
        #expect(throws: PostgresError.self) {
            _ = try connection.pipeline([.init("SELECT 1"), .init("SELECT 2")])
        }
        #expect(connection.isBroken)
    }

    @Test func cachedStatementsArePreparedOnceBoundedAndReplacedWhenTheyNoLongerFit() throws {
        let database = try TestDatabase(prefix: "pipeline")
        defer { database.drop() }
        try database.sql("CREATE TABLE things (id int PRIMARY KEY, label text)")
        try database.sql("INSERT INTO things SELECT g, 'thing ' || g FROM generate_series(1, 100) g")
        let connection = try PGConnection(url: database.url, mode: .normal)
        let lookup = "SELECT count(*) FROM things WHERE id = $1"
        func generated() throws -> Int {
            Int(
                try connection.execute(
                    "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgbridge_statement_%'"
                ).string(0, 0) ?? "") ?? -1
        }
        for id in 1...3 {
            let results = try connection.pipeline([.init(lookup, ["\(id)"], cached: true)])
            #expect(results[0].string(0, 0) == "1")
        }
        #expect(try generated() == 1, "one text, prepared once")
        // A bad value for a plan that still fits: a fresh plan would be the same.
        let badValue = #expect(throws: PGConnection.PipelineFailure.self) {
            _ = try connection.pipeline([.init(lookup, ["five"], cached: true)])
        }
        #expect(badValue?.error.sqlState == "22P02" && badValue?.ranEarlierPreparedPlan == true)
        if let badValue { #expect(try !connection.freshPlanDiffers(from: badValue)) }
        // The same new text twice in one pipeline is prepared once, not once per use.
        let pair = "SELECT count(*) FROM things WHERE id < $1"
        let twice = try connection.pipeline([.init(pair, ["3"], cached: true), .init(pair, ["5"], cached: true)])
        #expect(twice.map { $0.string(0, 0) } == ["2", "4"])
        #expect(try generated() == 2, "a text used twice in its first pipeline is prepared once")
        // At most 64 texts stay prepared; the least recently used go.
        for limit in 1...80 {
            _ = try connection.pipeline([.init("SELECT count(*) FROM things WHERE id <= \(limit)", cached: true)])
        }
        #expect(try generated() == 64)
        // An eviction skipped because an earlier statement failed is done before the next
        // pipeline: nothing stays prepared on the server that the cache forgot.
        let unrelated = #expect(throws: PGConnection.PipelineFailure.self) {
            _ = try connection.pipeline([
                .init("SELECT 1 / 0"), .init("SELECT count(*) FROM things WHERE id <= 1000", cached: true),
            ])
        }
        #expect(unrelated?.ranEarlierPreparedPlan == false)
        if let unrelated { #expect(try !connection.freshPlanDiffers(from: unrelated)) }
        _ = try connection.pipeline([.init("SELECT 1")])
        #expect(try generated() == 63)
        // A column whose type changed under a cached plan: the statement fails once (its
        // parameter was typed for the old column), is dropped, and is prepared afresh next time.
        _ = try connection.pipeline([.init(lookup, ["5"], cached: true)])
        try database.sql("ALTER TABLE things ALTER COLUMN id TYPE text")
        let stale = #expect(throws: PGConnection.PipelineFailure.self) {
            _ = try connection.pipeline([.init(lookup, ["5"], cached: true)])
        }
        #expect(stale?.ranEarlierPreparedPlan == true, "the failure names the earlier plan as a likely cause")
        if let stale { #expect(try connection.freshPlanDiffers(from: stale), "the fresh plan takes text") }
        let again = try connection.pipeline([.init(lookup, ["5"], cached: true)])
        #expect(again[0].string(0, 0) == "1")
        #expect(try generated() == 64)
    }

    @Test func aVanishedPreparedStatementRetiresTheConnection() throws {
        let database = try TestDatabase(prefix: "pipeline")
        defer { database.drop() }
        let connection = try PGConnection(url: database.url, mode: .normal)
        _ = try connection.pipeline([.init("SELECT 1", preparedName: "vanishing")])
        // As a function running DEALLOCATE ALL, or a pooler handing out another server session.
        try connection.execute("DEALLOCATE ALL")
        #expect(!connection.isBroken)
        #expect(throws: PGConnection.PipelineFailure.self) {
            _ = try connection.pipeline([.init("SELECT 1", preparedName: "vanishing")])
        }
        #expect(connection.isBroken, "the session replaces a connection whose statements are gone")
    }
}
