import BridgeCore
import Foundation
import Testing

/// The `postgres` sink into the second cluster, which only the serialised disruptive suite
/// uses: SIGKILLs of pgbridge and a stopped target lose and duplicate nothing.
extension DisruptiveTests {
    /// The source table plus a row-level log of every change, which says how many history rows
    /// an `append` target must have.
    static let countedItemsDDL =
        PostgresSinkTests.tableDDL + """
            CREATE TABLE change_log (n bigserial PRIMARY KEY, op text NOT NULL);
            CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO change_log (op) VALUES (TG_OP); RETURN NULL; END $$;
            CREATE TRIGGER log_rows AFTER INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION log_change();
            CREATE TRIGGER log_truncate AFTER TRUNCATE ON items FOR EACH STATEMENT EXECUTE FUNCTION log_change();
            """

    /// A source with the counted items table on the first cluster, a target with the items table on
    /// the second, and a configuration replicating one to the other (apply and append).
    static func sinkSetup(_ prefix: String) throws -> (
        source: TestDatabase, target: TestDatabase, directory: String, slot: String, config: String
    ) {
        let source = try TestDatabase(prefix: "\(prefix)_src")
        let target = try TestDatabase(prefix: "\(prefix)_dst", serverURL: TestEnvironment.disruptivePostgresURL)
        try source.sql(countedItemsDDL)
        try target.sql(PostgresSinkTests.tableDDL)
        let directory = try TestEnvironment.scratchDirectory(prefix)
        let slot = "pgbridge_\(source.name)"
        let config = try sinkConfig(directory: directory, source: source, target: target, slot: slot)
        return (source, target, directory, slot, config)
    }

    static func sinkConfig(directory: String, source: TestDatabase, target: TestDatabase, slot: String) throws
        -> String
    {
        let path = (directory as NSString).appendingPathComponent("pgbridge.yaml")
        try """
        postgres: {url: "\(source.url)"}
        state_dir: \(directory)/state
        pipes:
          - name: replicate
            source: {kind: replication, tables: [public.items], slot: \(slot), publication: \(slot), status_interval: 1s}
            sinks:
              - {name: replica, kind: postgres, url: "\(target.url)"}
              - {name: history, kind: postgres, url: "\(target.url)", mode: append, table: "public.{table}_history", create_tables: true}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// One transaction of the workload: inserts (every tenth row with a TOASTed document),
    /// updates that leave the document alone, key changes, deletes, and one truncate.
    static func workload(_ index: Int, _ firstID: Int) -> String {
        let doc = "(SELECT string_agg(md5(g::text || random()::text), '') FROM generate_series(1, 300) g)"
        var statements = [
            """
            INSERT INTO items SELECT g, 'k' || (g % 7), g * 0.5, '2026-12-01 00:00:00+00'::timestamptz + g * interval '1 s',
              ARRAY[g, NULL], ARRAY['t' || g], '{"g": 1}', jsonb_build_object('g', g), int4send(g), gen_random_uuid(),
              'ok', g, '2024-02-29', '1 hour', g / 7.0, g % 2 = 0, E'n\\t' || g, CASE WHEN g % 10 = 0 THEN \(doc) END
            FROM generate_series(\(firstID), \(firstID + 9)) g
            """,
            "UPDATE items SET note = 'u' || \(index), m = 'happy' WHERE a BETWEEN \(firstID - 40) AND \(firstID - 31)",
        ]
        if index % 3 == 0 { statements.append("UPDATE items SET a = a + 10000000 WHERE a = \(firstID - 25)") }
        if index % 4 == 0 { statements.append("DELETE FROM items WHERE a BETWEEN \(firstID - 20) AND \(firstID - 18)") }
        if index == 3_000 { statements.append("TRUNCATE items") }
        return statements.joined(separator: "; ")
    }

    /// About 100,000 changes applied while pgbridge is SIGKILLed twice: the replica equals the
    /// source, and the history has exactly one row per change.
    @Test func postgresSinkAppliesEachChangeOnceAcrossKills() async throws {
        let (source, target, directory, slot, config) = try Self.sinkSetup("pgkill")
        defer {
            source.drop()
            target.drop()
        }
        func launch() throws -> BridgeProcess {
            try BridgeProcess(arguments: ["run", "--config", config, "--log-level", "info"], directory: directory)
        }
        var bridge = try launch()
        try await waitForSlot(source, slot)

        let transactions = 6_000
        let inserter = Inserter(url: source.url)
        inserter.start(
            transactions: transactions, rowsPerTransaction: 10, pause: .zero, table: "items", statement: Self.workload)
        var kills = 0
        var logs: [String] = []
        for fraction in [3, 6] {
            try await waitFor("\(fraction)/10 of the workload", timeout: .seconds(300)) {
                inserter.commits.count >= transactions * fraction / 10
            }
            bridge.kill(SIGKILL)
            _ = try await bridge.waitForExit()
            kills += 1
            logs.append(bridge.stderr)
            bridge = try launch()
        }
        try await inserter.waitUntilDone(timeout: .seconds(300))
        let changes = try #require(try source.value("SELECT count(*) FROM change_log").flatMap { Int($0) })
        #expect(changes > 90_000, "\(changes) changes")
        try await waitFor("a history row per change", timeout: .seconds(300)) {
            (try? target.value("SELECT count(*) FROM items_history")).flatMap { $0 }.flatMap { Int($0) } ?? 0 >= changes
        }
        try await waitFor("the replica to equal the source", timeout: .seconds(120)) {
            try PostgresSinkTests.rows(target, "items") == PostgresSinkTests.rows(source, "items")
        }
        bridge.kill(SIGTERM)
        _ = try await bridge.waitForExit()
        logs.append(bridge.stderr)
        #expect(kills == 2)
        let resumed = logs.dropFirst().filter {
            $0.contains("postgres sink replica resumes after what an earlier run applied: slot:\(slot) at 0/")
        }.count
        #expect(resumed == 2, "each restart read the recorded position")
        let skipped = logs.joined().components(separatedBy: "were applied before (exactly once)").count - 1
        print(
            "postgres sink crash test: \(changes) changes, \(kills) kills, \(skipped) deliveries skipped replayed events"
        )
        #expect(try target.value("SELECT count(*) FROM items_history") == "\(changes)", "exactly one row per change")
        #expect(try target.value("SELECT count(DISTINCT id) FROM items_history") == "\(changes)")
        #expect(
            try target.value("SELECT count(*) FROM items_history WHERE op = 'truncate'") == "1",
            "the truncate is in the history once")
    }
}

extension DisruptiveTests {
    /// The target stopped for 20 s while the source keeps changing: the pipe waits without
    /// confirming, then applies everything by itself once the target is back.
    @Test func postgresSinkWaitsForAStoppedTarget() async throws {
        let (source, target, directory, slot, config) = try Self.sinkSetup("pgdown")
        defer {
            source.drop()
            target.drop()
        }
        let bridge = try BridgeProcess(
            arguments: ["run", "--config", config, "--log-level", "info"], directory: directory)
        try await waitForSlot(source, slot)
        let inserter = Inserter(url: source.url)
        inserter.start(
            transactions: 400, rowsPerTransaction: 10, pause: .milliseconds(50), table: "items",
            statement: Self.workload)
        try await waitFor("the first changes applied", timeout: .seconds(60)) {
            (try? target.value("SELECT count(*) FROM items")).flatMap { $0 }.flatMap { Int($0) } ?? 0 > 0
        }
        try TestEnvironment.control(["stop"])
        let stoppedAt = try #require(try source.value("SELECT count(*) FROM change_log").flatMap { Int($0) })
        try await Task.sleep(for: .seconds(20))
        let confirmed = try source.slotConfirmedLSN(slot)
        let written = try source.value("SELECT pg_current_wal_lsn()::text").flatMap { LSN($0) }
        try TestEnvironment.control(["start"])
        try await inserter.waitUntilDone(timeout: .seconds(120))
        let changes = try #require(try source.value("SELECT count(*) FROM change_log").flatMap { Int($0) })
        #expect(changes > stoppedAt, "the source kept changing while the target was down")
        if let confirmed, let written { #expect(confirmed < written, "nothing past the outage was confirmed") }
        try await waitFor("the replica to catch up", timeout: .seconds(120)) {
            // The test's own connection to the target broke with the stop: the first query fails.
            guard let replica = try? PostgresSinkTests.rows(target, "items") else { return false }
            return replica == (try PostgresSinkTests.rows(source, "items"))
        }
        try await waitFor("a history row per change", timeout: .seconds(60)) {
            (try? target.value("SELECT count(*) FROM items_history")).flatMap { $0 } == "\(changes)"
        }
        #expect(bridge.stderr.contains("deliver to replica"), "the outage was reported while waiting")
        bridge.kill(SIGTERM)
        _ = try await bridge.waitForExit()
    }
}
