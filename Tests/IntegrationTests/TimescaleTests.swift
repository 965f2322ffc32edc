import BridgeCore
import Foundation
import Testing

@Suite("TimescaleDB hypertables (catalog fixture on real PostgreSQL)", .enabled(if: TestEnvironment.hasPostgres))
struct TimescaleTests {
    func fixtureDatabase(_ prefix: String) throws -> TestDatabase {
        try TimescaleFixture.conditionsDatabase(prefix: prefix)
    }

    @Test func chunkRowsArriveAsTheHypertableIncludingNewChunks() async throws {
        let db = try fixtureDatabase("ts_chunks")
        defer { db.drop() }
        // chunk 1 exists before the pipe
        try db.sql("INSERT INTO conditions VALUES ('2026-01-01 10:00+00', 'd1', 20.5)")
        let pipe = try InProcessPipe(database: db, name: "ts", tables: ["public.*"])
        try await pipe.startStreaming(db)
        try db.reconnect()  // new session: picks up the database-level auto-publication setting
        #expect(try db.value("SELECT current_setting('timescaledb.enable_chunk_auto_publication', true)") == "on")
        try db.sql(
            """
            INSERT INTO conditions VALUES ('2026-01-01 11:00+00', 'd1', 21.0);
            INSERT INTO conditions VALUES ('2026-01-02 10:00+00', 'd1', 22.0), ('2026-01-02 10:00+00', 'd2', 23.0);
            INSERT INTO conditions VALUES ('2026-01-03 10:00+00', 'd1', 24.0);
            UPDATE conditions SET temp = 30 WHERE time = '2026-01-02 10:00+00' AND device = 'd2';
            DELETE FROM conditions WHERE time = '2026-01-01 11:00+00';
            """)
        let events = try await pipe.waitForEvents(count: 6)
        try await pipe.stop()
        #expect(events.count == 6)
        #expect(events.map(\.op) == ["insert", "insert", "insert", "insert", "update", "delete"])
        let allHypertable = events.allSatisfy { $0.table == "conditions" }
        #expect(allHypertable)
        let chunks = events.compactMap { ($0["source"] as? [String: Any])?["chunk"] as? String }
        #expect(
            chunks == [
                "_timescaledb_internal._hyper_1_1_chunk", "_timescaledb_internal._hyper_1_2_chunk",
                "_timescaledb_internal._hyper_1_2_chunk", "_timescaledb_internal._hyper_1_3_chunk",
                "_timescaledb_internal._hyper_1_2_chunk", "_timescaledb_internal._hyper_1_1_chunk",
            ])
        #expect(events[1].after?["device"] as? String == "d1" && events[2].after?["device"] as? String == "d2")
        #expect(events[4].key?["device"] as? String == "d2" && events[4].after?["temp"] as? Double == 30)
        // The pattern public.* never captures chunks directly, and every chunk is in the publication.
        let published = try db.sql(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'pgbridge_\(db.name)' ORDER BY 1"
        )
        #expect(
            published.compactMap { $0[0] } == [
                "_timescaledb_catalog.chunk", "_timescaledb_catalog.dimension_slice",
                "_timescaledb_internal._hyper_1_1_chunk",
                "_timescaledb_internal._hyper_1_2_chunk",
                "_timescaledb_internal._hyper_1_3_chunk", "public.conditions",
            ])
    }

    @Test func compressionBetweenMarkersIsSuppressed() async throws {
        let db = try fixtureDatabase("ts_compress")
        defer { db.drop() }
        try db.sql(
            "INSERT INTO conditions SELECT '2026-01-01 00:00+00'::timestamptz + g * interval '1 minute', 'd1', g FROM generate_series(1, 5) g"
        )
        let pipe = try InProcessPipe(database: db, name: "tsc", tables: ["public.conditions"])
        try await pipe.startStreaming(db)
        try db.sql(
            """
            BEGIN;
            SELECT pg_logical_emit_message(true, '::timescaledb-compression-start', '');
            DELETE FROM _timescaledb_internal._hyper_1_1_chunk;
            SELECT pg_logical_emit_message(true, '::timescaledb-compression-end', '');
            SELECT pg_logical_emit_message(true, '::timescaledb-decompression-start', '');
            INSERT INTO _timescaledb_internal._hyper_1_1_chunk SELECT '2026-01-01 00:00+00'::timestamptz + g * interval '1 minute', 'd1', g FROM generate_series(1, 5) g;
            SELECT pg_logical_emit_message(true, '::timescaledb-decompression-end', '');
            UPDATE conditions SET temp = 99 WHERE time = '2026-01-01 00:03+00';
            COMMIT;
            INSERT INTO conditions VALUES ('2026-01-01 12:00+00', 'd9', 1);
            """)
        // The d9 row, committed after the compression transaction, is the sentinel: once it is in
        // the file, a compression row that leaked through would be there too.
        let events = try await EventFile.waitFor(pipe.outputPath) { events in
            events.contains { $0.after?["device"] as? String == "d9" }
        }
        try await pipe.stop()
        let all = pipe.events()
        #expect(all.count == 2, "\(all.map { $0.op ?? "?" })")
        #expect(all.first?.op == "update" && all.first?.after?["temp"] as? Double == 99)
        #expect(all.first?.table == "conditions")
        #expect(events.last?.op == "insert" && events.last?.after?["device"] as? String == "d9")
    }

    @Test(arguments: ["view", "drop"])
    func continuousAggregateRows(mode: String) async throws {
        let db = try fixtureDatabase("ts_cagg")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE _timescaledb_internal._materialized_hypertable_2 (time timestamptz NOT NULL, device text NOT NULL, avg_temp float8, PRIMARY KEY (time, device));
            SELECT _timescaledb_catalog.fixture_create_hypertable('_timescaledb_internal._materialized_hypertable_2');
            INSERT INTO _timescaledb_catalog.continuous_agg (mat_hypertable_id, raw_hypertable_id, user_view_schema, user_view_name)
            VALUES (2, 1, 'public', 'conditions_hourly');
            CREATE VIEW conditions_hourly AS SELECT * FROM _timescaledb_internal._materialized_hypertable_2;
            INSERT INTO _timescaledb_internal._materialized_hypertable_2 VALUES ('2026-01-01 00:00+00', 'd0', 1);
            """)
        let directory = try TestEnvironment.scratchDirectory("cagg")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.conditions", "public.conditions_hourly"], slot: slot,
            output: output, extraSource: "continuous_aggregates: \(mode)")
        let bridge = try BridgeProcess(
            arguments: ["run", "--config", config, "--log-level", "debug"], directory: directory)
        try await waitForSlot(db, slot)
        try db.reconnect()
        try db.sql(
            """
            INSERT INTO _timescaledb_internal._materialized_hypertable_2 VALUES ('2026-01-01 01:00+00', 'd1', 20.25);
            INSERT INTO conditions VALUES ('2026-01-01 01:10+00', 'd1', 20.0);
            """)
        // Both rows are one transaction, delivered whole: with the `conditions` row in the file,
        // the aggregate's row (written first) is there too unless it was dropped.
        let events = try await EventFile.waitFor(output) { events in events.contains { $0.table == "conditions" } }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        let all = EventFile.read(output)
        let aggregate = all.filter { $0.table == "conditions_hourly" }
        if mode == "view" {
            #expect(aggregate.count == 1, "\(bridge.stderr.suffix(800))")
            #expect(aggregate.first?.after?["avg_temp"] as? Double == 20.25)
            let source = aggregate.first?["source"] as? [String: Any]
            #expect((source?["chunk"] as? String)?.hasPrefix("_timescaledb_internal._hyper_2_") == true)
        } else {
            #expect(aggregate.isEmpty)
        }
        #expect(all.allSatisfy { $0.table != "_materialized_hypertable_2" })
        #expect(events.contains { $0.table == "conditions" })
    }

    @Test func retentionIsReportedAsChunkDropped() async throws {
        let db = try fixtureDatabase("ts_retention")
        defer { db.drop() }
        try db.sql(
            """
            INSERT INTO conditions SELECT '2026-01-01'::timestamptz + d * interval '1 day', 'd1', d FROM generate_series(0, 2) d;
            """)
        let pipe = try InProcessPipe(database: db, name: "tsr", tables: ["public.conditions"])
        try await pipe.startStreaming(db)
        try db.reconnect()
        try db.sql(
            """
            INSERT INTO conditions VALUES ('2026-01-04 00:00+00', 'd1', 3);
            SELECT _timescaledb_catalog.fixture_drop_chunks('conditions', '2026-01-03 00:00+00');
            """)
        // A later transaction: once it arrives, everything before it has (nothing more may come).
        try db.sql("INSERT INTO conditions VALUES ('2026-01-04 01:00+00', 'sentinel', 9)")
        let events = try await EventFile.waitFor(pipe.outputPath) { events in
            events.contains { $0.after?["device"] as? String == "sentinel" }
        }
        try await pipe.stop()
        let all = pipe.events()
        #expect(all.map(\.op) == ["insert", "chunk_dropped", "chunk_dropped", "insert"], "\(all)")
        let dropped = all.filter { $0.op == "chunk_dropped" }
        let sources = dropped.compactMap { $0["source"] as? [String: Any] }
        #expect(sources.allSatisfy { $0["table"] as? String == "conditions" && $0["schema"] as? String == "public" })
        #expect(
            sources.compactMap { $0["chunk"] as? String } == [
                "_timescaledb_internal._hyper_1_1_chunk", "_timescaledb_internal._hyper_1_2_chunk",
            ])
        let first = try #require(dropped.first?["chunk"] as? [String: Any])
        #expect(first["id"] as? Int == 1)
        #expect(first["range_start"] as? String == "2026-01-01T00:00:00.000000Z")
        #expect(first["range_end"] as? String == "2026-01-02T00:00:00.000000Z")
        #expect(events.first?.table == "conditions")
        // The catalog table is published for this, but its own rows are never reported.
        let catalogRows = all.filter {
            ($0["source"] as? [String: Any])?["schema"] as? String == "_timescaledb_catalog"
        }
        #expect(catalogRows.isEmpty)
    }

    /// A replication role that may not change the publication (a superuser made it in advance)
    /// streams, and says that retention will not be reported, with the statement that fixes it.
    @Test func aRoleThatCannotPublishTheChunkCatalogIsToldTheFix() async throws {
        let db = try fixtureDatabase("ts_catalog_denied")
        defer { db.drop() }
        let publication = "pub_\(db.name)"
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_repl LOGIN REPLICATION"))
            INSERT INTO conditions VALUES ('2026-01-01 10:00+00', 'd1', 20.5);
            CREATE PUBLICATION \(publication) FOR TABLE conditions, _timescaledb_internal._hyper_1_1_chunk;
            """)
        let directory = try TestEnvironment.scratchDirectory("ts-catalog-denied")
        let url = db.url.replacingOccurrences(of: "postgresql://postgres@", with: "postgresql://pgbridge_test_repl@")
        let config = try ConfigFile.write(
            directory: directory, url: url, tables: ["public.conditions"], slot: db.name,
            output: "\(directory)/events.jsonl")
        try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "publication: \(db.name)", with: "publication: \(publication)")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        try await bridge.waitForLog("streaming changes")
        let line = bridge.stderr.split(separator: "\n").first {
            $0.contains("cannot add TimescaleDB's catalog tables to publication")
        }
        #expect(
            line?.contains("cannot add TimescaleDB's catalog tables to publication \(publication): ") == true,
            "\(bridge.stderr.suffix(2000))")
        #expect(line?.contains(" warning ") == true, "logged as a warning: \(line ?? "")")
        #expect(
            line?.contains("ADD TABLE _timescaledb_catalog.chunk, _timescaledb_catalog.dimension_slice as a superuser")
                == true, "the fix, on the same line: \(line ?? "")")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }

    @Test func reconcilerAddsChunksCreatedWithoutAutoPublication() async throws {
        let db = try fixtureDatabase("ts_reconcile")
        defer { db.drop() }
        let directory = try TestEnvironment.scratchDirectory("reconcile")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.conditions"], slot: slot, output: output,
            extraSource: "reconcile_interval: 1s")
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        try await waitForSlot(db, slot)
        // An application session that predates the setting: the new chunk is not published.
        try db.sql(
            """
            SET timescaledb.enable_chunk_auto_publication = off;
            INSERT INTO conditions VALUES ('2026-02-01 10:00+00', 'early', 1);
            """)
        let chunk = "_timescaledb_internal._hyper_1_1_chunk"
        let deadline = ContinuousClock.now + .seconds(20)
        var published = false
        while ContinuousClock.now < deadline && !published {
            published =
                try db.value(
                    "SELECT count(*) FROM pg_publication_tables WHERE pubname = '\(slot)' AND schemaname || '.' || tablename = '\(chunk)'"
                ) == "1"
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(published, "the reconciler did not add \(chunk)")
        try db.sql("INSERT INTO conditions VALUES ('2026-02-01 11:00+00', 'late', 2)")
        let events = try await EventFile.waitFor(output) { $0.contains { $0.after?["device"] as? String == "late" } }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        #expect(events.contains { $0.after?["device"] as? String == "late" && $0.table == "conditions" })
        // Rows written before the chunk was added are lost to replication: that is what the warning says.
        #expect(!events.contains { $0.after?["device"] as? String == "early" })
        #expect(
            bridge.stderr.contains("added chunks missing from publication \(slot): \(chunk)"),
            "\(bridge.stderr.suffix(1500))")
    }

    @Test func checkReportsMissingChunksAndReplicaIdentity() async throws {
        let db = try fixtureDatabase("ts_check")
        defer { db.drop() }
        try db.sql(
            """
            INSERT INTO conditions VALUES ('2026-01-01 10:00+00', 'd1', 1), ('2026-01-02 10:00+00', 'd1', 1);
            CREATE PUBLICATION pgbridge_check FOR TABLE ONLY conditions, ONLY _timescaledb_internal._hyper_1_1_chunk;
            CREATE TABLE metrics (time timestamptz NOT NULL, value float8);
            SELECT _timescaledb_catalog.fixture_create_hypertable('metrics');
            """)
        let directory = try TestEnvironment.scratchDirectory("tscheck")
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.conditions", "public.metrics"], slot: "pgbridge_check",
            output: "\(directory)/o.jsonl")
        let result = try await BridgeProcess.run(["check", "--config", config], directory: directory)
        #expect(result.status == 3)
        #expect(
            result.stderr.contains(
                "hypertable public.conditions has 1 chunk(s) missing from publication pgbridge_check (_timescaledb_internal._hyper_1_2_chunk)"
            ),
            "\(result.stderr)")
        #expect(result.stderr.contains("table public.metrics has no primary key and REPLICA IDENTITY DEFAULT"))
    }
}
