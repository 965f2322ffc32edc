import BridgeCore
import Foundation
import Testing

/// Changes that are decoded after their relation is gone from the live catalog: pgbridge was
/// stopped (or lagged) while a TimescaleDB chunk was created and dropped, or a table was dropped.
/// Nothing of it may be lost or reported under a wrong name.
@Suite("Relations gone before they are decoded", .enabled(if: TestEnvironment.hasPostgres))
struct CaptureWhileAwayTests {
    /// pgbridge streams `conditions` until a row written while it runs arrives, then stops.
    static func runOnce(_ db: TestDatabase, label: String) async throws -> (
        directory: String, output: String, config: String, slot: String
    ) {
        let directory = try TestEnvironment.scratchDirectory(label)
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.conditions"], slot: slot, output: output)
        let first = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { first.kill(SIGKILL) }
        try await waitForSlot(db, slot)
        try db.reconnect()  // picks up the database-level auto-publication setting
        try db.sql("INSERT INTO conditions VALUES ('2026-01-01 11:00+00', 'running', 2)")
        _ = try await EventFile.waitFor(output) { $0.contains { $0.after?["device"] as? String == "running" } }
        first.kill(SIGTERM)
        #expect(try await first.waitForExit() == 0, "\(first.stderr.suffix(1500))")
        return (directory, output, config, slot)
    }

    @Test func chunksCreatedAndDroppedWhilePgbridgeWasStoppedAreReported() async throws {
        let db = try TimescaleFixture.conditionsDatabase(prefix: "ts_away")
        defer { db.drop() }
        try db.sql("INSERT INTO conditions VALUES ('2026-01-01 10:00+00', 'before', 1)")  // chunk 1
        let (directory, output, config, slot) = try await Self.runOnce(db, label: "ts_away")

        // While pgbridge is stopped: a new chunk (2) gets rows and is dropped with chunk 1.
        try db.sql(
            """
            INSERT INTO conditions VALUES ('2026-01-05 10:00+00', 'away', 3), ('2026-01-05 11:00+00', 'away', 4);
            SELECT _timescaledb_catalog.fixture_drop_chunks('conditions', '2026-01-06 00:00+00');
            INSERT INTO conditions VALUES ('2026-01-07 10:00+00', 'after', 5);
            """)
        #expect(try db.value("SELECT count(*) FROM _timescaledb_catalog.chunk") == "1")
        // PostgreSQL still holds every change for the slot (the chunk's Relation and Inserts).
        let pending = try db.value(
            """
            SELECT count(*) FROM pg_logical_slot_peek_binary_changes('\(slot)', NULL, NULL,
                'proto_version', '1', 'publication_names', '\(slot)')
            """)
        #expect(Int(pending ?? "0") ?? 0 > 0)

        let second = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        let events = try await EventFile.waitFor(output) { $0.contains { $0.after?["device"] as? String == "after" } }
        second.kill(SIGTERM)
        #expect(try await second.waitForExit() == 0)
        let log = second.stderr.suffix(3000)
        let away = events.filter { $0.after?["device"] as? String == "away" }
        #expect(away.count == 2, "\(log)")
        #expect(away.allSatisfy { $0.table == "conditions" && $0.op == "insert" })
        #expect(
            away.allSatisfy {
                ($0["source"] as? [String: Any])?["chunk"] as? String == "_timescaledb_internal._hyper_1_2_chunk"
            })
        let dropped = events.filter { $0.op == "chunk_dropped" }
        let ranges = dropped.compactMap { event -> [String]? in
            guard let chunk = event["chunk"] as? [String: Any], let source = event["source"] as? [String: Any] else {
                return nil
            }
            return [
                source["table"] as? String ?? "?", source["chunk"] as? String ?? "?",
                chunk["range_start"] as? String ?? "null", chunk["range_end"] as? String ?? "null",
            ]
        }
        #expect(
            ranges == [
                [
                    "conditions", "_timescaledb_internal._hyper_1_1_chunk", "2026-01-01T00:00:00.000000Z",
                    "2026-01-02T00:00:00.000000Z",
                ],
                [
                    "conditions", "_timescaledb_internal._hyper_1_2_chunk", "2026-01-05T00:00:00.000000Z",
                    "2026-01-06T00:00:00.000000Z",
                ],
            ], "\(log)")
        // The chunk map forgets dropped chunks once their drop is confirmed.
        let map = try String(contentsOfFile: "\(directory)/state/test.chunks.json", encoding: .utf8)
        #expect(
            !map.contains("_hyper_1_1_chunk") && !map.contains("_hyper_1_2_chunk") && map.contains("_hyper_1_3_chunk"))
    }

    /// The pipe's chunk map was lost (state_dir deleted) and a chunk it had seen was dropped
    /// meanwhile: the drop cannot be reported with its range, and pgbridge says so.
    @Test func aDropOfAChunkTheMapLostIsReported() async throws {
        let db = try TimescaleFixture.conditionsDatabase(prefix: "ts_lost_map")
        defer { db.drop() }
        try db.sql("INSERT INTO conditions VALUES ('2026-01-01 10:00+00', 'before', 1)")  // chunk 1
        let (directory, output, config, _) = try await Self.runOnce(db, label: "ts_lost_map")

        try FileManager.default.removeItem(atPath: "\(directory)/state/test.chunks.json")
        try db.sql(
            """
            SELECT _timescaledb_catalog.fixture_drop_chunks('conditions', '2026-01-02 00:00+00');
            INSERT INTO conditions VALUES ('2026-01-07 10:00+00', 'after', 3);
            """)
        let second = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        _ = try await EventFile.waitFor(output) { $0.contains { $0.after?["device"] as? String == "after" } }
        second.kill(SIGTERM)
        #expect(try await second.waitForExit() == 0)
        let line = second.stderr.split(separator: "\n").first { $0.contains("was dropped, but pgbridge never saw it") }
        #expect(
            line?.contains("TimescaleDB chunk 1 was dropped, but pgbridge never saw it") == true,
            "\(second.stderr.suffix(2000))")
        #expect(line?.contains(" warning ") == true, "logged as a warning: \(line ?? "")")
    }

    @Test func aDroppedTableThatCannotBeResolvedIsDeliveredUnderItsName() async throws {
        let db = try TestDatabase(prefix: "gone_rel")
        defer { db.drop() }
        try db.sql("CREATE TABLE keep (id int PRIMARY KEY, note text)")
        let directory = try TestEnvironment.scratchDirectory("gone_rel")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.keep"], slot: slot, output: output)
        let first = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        try await waitForSlot(db, slot)
        first.kill(SIGTERM)
        #expect(try await first.waitForExit() == 0)
        // Someone adds a table to the pipe's publication, writes to it and drops it, all while
        // pgbridge is stopped: pgbridge cannot tell whose table it was.
        try db.sql(
            """
            CREATE TABLE gone (id int PRIMARY KEY, note text);
            ALTER PUBLICATION \(slot) ADD TABLE gone;
            INSERT INTO gone VALUES (1, 'lost?');
            DROP TABLE gone;
            INSERT INTO keep VALUES (1, 'sentinel');
            """)
        let second = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        let events = try await EventFile.waitFor(output) { $0.contains { $0.table == "keep" } }
        second.kill(SIGTERM)
        #expect(try await second.waitForExit() == 0)
        #expect(events.map { $0.table ?? "?" } == ["gone", "keep"], "\(second.stderr.suffix(1500))")
        #expect(events.first?.after?["note"] as? String == "lost?")
        let errors = second.stderr.components(separatedBy: "cannot resolve relation public.gone").count - 1
        #expect(errors == 1, "\(second.stderr.suffix(1500))")
        #expect(second.stderr.contains(") of publication \(slot)"), "\(second.stderr.suffix(1500))")
    }
}
