import BridgeCore
import Foundation
import Logging
import Pipeline
import PostgresSink
import Testing

/// The `postgres` sink against real PostgreSQL: a source database captured by a replication
/// pipe, a target database the changes are applied to.
@Suite("PostgreSQL sink", .enabled(if: TestEnvironment.hasPostgres))
struct PostgresSinkTests {
    static let tableDDL = """
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE DOMAIN posint AS int CHECK (VALUE > 0);
        CREATE TABLE items (
            a int, b text, n numeric, ts timestamptz, arr int[], tags text[], j json, jb jsonb, bin bytea,
            u uuid, m mood, d posint, dt date, iv interval, f float8, flag bool, note text, doc text,
            PRIMARY KEY (a, b));
        """

    static func sink(
        _ target: TestDatabase, source: TestDatabase, slot: String, name: String, settings: String = "",
        logger: Logger = InProcessPipe.testLogger
    ) throws -> PipeSink {
        try sink(url: target.url, source: source, slot: slot, name: name, settings: settings, logger: logger)
    }

    static func sink(
        url: String, source: TestDatabase, slot: String, name: String, settings: String = "",
        logger: Logger = InProcessPipe.testLogger
    ) throws -> PipeSink {
        let parsed = try SinkFixture.parse("kind: postgres, url: \"\(url)\"\(settings)", retries: 0)
        guard let config = parsed.settings as? PostgresSinkConfig else { throw TestFailure("expected postgres") }
        let sink = PostgresSink(
            config: config, pipe: "pgsink", sink: name,
            source: SinkSourceInfo(postgres: PostgresConfig(url: source.url), streamID: "slot:\(slot)"),
            logger: logger)
        return PipeSink(name: name, sink: sink, delivery: parsed.delivery)
    }

    /// Every row of `table` as JSON text, ordered by its key: equal lists = equal tables.
    static func rows(_ db: TestDatabase, _ table: String) throws -> [String] {
        try db.sql("SELECT to_jsonb(t)::text FROM \(table) t ORDER BY a, b").map { $0[0] ?? "NULL" }
    }

    @Test func appliesEveryKindOfChangeAndKeepsAHistory() async throws {
        let source = try TestDatabase(prefix: "pgsink_src")
        let target = try TestDatabase(prefix: "pgsink_dst")
        defer {
            source.drop()
            target.drop()
        }
        try source.sql(Self.tableDDL)
        try target.sql(Self.tableDDL)
        try target.sql("ALTER TABLE items ADD CONSTRAINT no_poison CHECK (note IS DISTINCT FROM 'poison')")
        let slot = "pgbridge_\(source.name)"
        let pipe = try InProcessPipe(
            database: source, name: "pgsink", tables: ["public.items"],
            sinks: [
                try Self.sink(target, source: source, slot: slot, name: "replica"),
                try Self.sink(
                    target, source: source, slot: slot, name: "history",
                    settings: ", mode: append, table: \"public.{table}_history\", create_tables: true"),
            ], withFileSink: false)
        try await pipe.startStreaming(source)

        let doc = "(SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 300) g)"
        var changes = 0
        func write(_ statement: String, changes count: Int) throws {
            try source.sql(statement)
            changes += count
        }
        try write(
            """
            INSERT INTO items SELECT g, 'k' || g, g * 1.25, '2026-12-01 10:00:00+00'::timestamptz + g * interval '1 min',
                ARRAY[g, NULL, g + 1], ARRAY['x', E'tab\\there', 'quote"d'], '{"a": [1, 2]}', '{"b": {"c": null}}',
                decode('00ff10' || lpad(to_hex(g), 2, '0'), 'hex'), gen_random_uuid(), 'ok', g, '2024-02-29', '1 day 02:03:04',
                CASE WHEN g = 3 THEN 'NaN'::float8 ELSE g / 3.0 END, g % 2 = 0, E'line\\nbreak \\\\ back ✓', \(doc)
            FROM generate_series(1, 20) g
            """, changes: 20)
        try write("UPDATE items SET note = 'updated', m = 'happy' WHERE a <= 5", changes: 5)  // TOAST doc unchanged
        try write("UPDATE items SET a = a + 100 WHERE a BETWEEN 6 AND 8", changes: 3)  // key changes
        try write("DELETE FROM items WHERE a IN (9, 10)", changes: 2)
        try write(
            "BEGIN; INSERT INTO items (a, b) VALUES (50, 'x'); UPDATE items SET n = 1 WHERE a = 50; DELETE FROM items WHERE a = 50; COMMIT",
            changes: 3)
        try write("INSERT INTO items (a, b, note) VALUES (60, 'p', 'poison')", changes: 1)
        try write(
            "BEGIN; UPDATE items SET note = 'again' WHERE a = 11; UPDATE items SET f = 2.5 WHERE a = 11; COMMIT",
            changes: 2)

        try await waitFor("the history table to have a row per change", timeout: .seconds(60)) {
            (try? target.value("SELECT count(*) FROM items_history")).flatMap { $0 }.flatMap { Int($0) } == changes
        }
        let expected = { try Self.rows(source, "items").filter { !$0.contains("\"poison\"") } }
        try? await waitFor("the replica to equal the source", timeout: .seconds(60)) {
            try Self.rows(target, "items") == expected()
        }
        let replica = try Self.rows(target, "items")
        let wanted = try expected()
        #expect(
            replica == wanted,
            "missing: \(wanted.filter { !replica.contains($0) }.prefix(3)) unexpected: \(replica.filter { !wanted.contains($0) }.prefix(3))"
        )
        let dead = try await EventFile.waitFor(pipe.deadLetterPath, timeout: .seconds(90)) { $0.count >= 1 }
        #expect(dead.count == 1)
        let reason = dead.first?["reason"] as? String ?? ""
        #expect(reason.contains("SQLSTATE 23514") && reason.contains("no_poison"), "\(reason)")
        #expect(try target.value("SELECT count(*) FROM items WHERE a BETWEEN 6 AND 8") == "0", "old keys deleted")
        #expect(try target.value("SELECT count(*) FROM items WHERE length(doc) = 9600 AND a <= 5") == "5", "TOAST kept")
        #expect(
            try target.value("SELECT count(DISTINCT id) FROM items_history") == "\(changes)",
            "one history row per change")
        #expect(
            try target.value("SELECT op FROM items_history WHERE after->>'a' = '50' ORDER BY commit_lsn, id LIMIT 1")
                == "insert")

        try source.sql("TRUNCATE items")
        try source.sql("INSERT INTO items (a, b) VALUES (1, 'after truncate')")
        try await waitFor("the truncate to reach the replica", timeout: .seconds(90)) {
            try target.sql("SELECT a, b FROM items").map { $0.compactMap { $0 } } == [["1", "after truncate"]]
        }
        try await pipe.stop()
        let positions = try target.sql("SELECT sink, position FROM pgbridge.sink_positions ORDER BY sink")
        #expect(positions.map { $0[0] } == ["history", "replica"])
        #expect(positions[0][1] == positions[1][1], "both sinks recorded the last event")
    }
}

extension PostgresSinkTests {
    /// Hypertable to hypertable with the TimescaleDB catalog fixture on both sides: the target
    /// hypertable is created like the source's, chunk rows land in it (in chunks of its own),
    /// updates apply, and a retention drop on the source drops the target's chunks.
    @Test func replicatesAHypertableAndMirrorsRetention() async throws {
        let source = try TimescaleFixture.conditionsDatabase(prefix: "pgsink_ts_src")
        let target = try TestDatabase(prefix: "pgsink_ts_dst")
        defer {
            source.drop()
            target.drop()
        }
        let keeping = try TestDatabase(prefix: "pgsink_ts_keep")
        defer { keeping.drop() }
        try target.sql(TimescaleFixture.sql)
        try keeping.sql(TimescaleFixture.sql)
        let slot = "pgbridge_\(source.name)"
        let (logger, records) = RecordingLogHandler.logger()
        let pipe = try InProcessPipe(
            database: source, name: "pgsink_ts", tables: ["public.conditions"],
            sinks: [
                try Self.sink(
                    target, source: source, slot: slot, name: "replica",
                    settings: ", create_tables: true, on_chunk_dropped: drop"),
                try Self.sink(
                    keeping, source: source, slot: slot, name: "keeping", settings: ", create_tables: true",
                    logger: logger),
            ], withFileSink: false)
        try await pipe.startStreaming(source)
        try source.reconnect()  // picks up the database-level chunk auto-publication
        try source.sql(
            """
            INSERT INTO conditions SELECT '2026-01-01 00:00+00'::timestamptz + g * interval '6 hours', 'd' || (g % 2), g
            FROM generate_series(0, 15) g;
            UPDATE conditions SET temp = -1 WHERE time = '2026-01-02 06:00+00';
            DELETE FROM conditions WHERE time = '2026-01-03 12:00+00';
            """)
        let query = "SELECT time::text, device, temp FROM conditions ORDER BY time, device"
        try await waitFor("the target hypertable to equal the source", timeout: .seconds(60)) {
            (try? target.sql(query)) == (try source.sql(query))  // the sink creates the table first
        }
        #expect(
            try target.value("SELECT count(*) FROM _timescaledb_catalog.hypertable WHERE table_name = 'conditions'")
                == "1", "the target table is a hypertable")
        #expect(try target.value("SELECT count(*) FROM _timescaledb_catalog.chunk") == "4", "one chunk per day")
        #expect(try target.value("SELECT count(*) FROM ONLY conditions") == "0", "rows live in the chunks")

        try source.sql("SELECT _timescaledb_catalog.fixture_drop_chunks('conditions', '2026-01-03 00:00+00')")
        try await waitFor("the retention to reach the target", timeout: .seconds(60)) {
            try target.value("SELECT count(*) FROM _timescaledb_catalog.chunk") == "2"
        }
        #expect(try target.sql(query) == source.sql(query))
        #expect(try target.value("SELECT min(time)::text FROM conditions") == "2026-01-03 00:00:00+00")
        try source.sql(
            "SELECT pg_logical_emit_message(true, 'note', 'no table'); INSERT INTO conditions VALUES ('2026-01-05 00:00+00', 'd9', 9)"
        )
        try await waitFor("the last row on the keeping target", timeout: .seconds(90)) {
            try keeping.value("SELECT count(*) FROM conditions WHERE device = 'd9'") == "1"
        }
        try await pipe.stop()
        #expect(
            try keeping.value("SELECT count(*) FROM conditions WHERE time < '2026-01-03'") == "8",
            "on_chunk_dropped: ignore keeps the target's rows")
        let warnings = records.messages(at: .warning)
        #expect(
            warnings.filter {
                $0.contains("retention dropped chunks of public.conditions") && $0.contains("on_chunk_dropped: drop")
            }
            .count == 1, "once per table: \(warnings)")
        #expect(
            warnings.filter { $0.contains("logical messages have no table") }.count == 1,
            "a message is not applied, and that is said once: \(warnings)")
    }
}

extension PostgresSinkTests {
    /// `pgbridge check` reads the target's catalog for every captured table and prints one line
    /// per problem: a missing table, a missing key, missing columns, missing privileges.
    @Test(.enabled(if: TestEnvironment.hasBinary)) func checkNamesEachTargetProblem() async throws {
        let source = try TestDatabase(prefix: "pgsink_chk_src")
        let target = try TestDatabase(prefix: "pgsink_chk_dst")
        defer {
            source.drop()
            target.drop(roles: ["pgsink_chk_writer"])
        }
        try source.sql(
            """
            CREATE TABLE a (id int PRIMARY KEY, v text, extra int);
            CREATE TABLE b (id int PRIMARY KEY, v text);
            CREATE TABLE c (id int PRIMARY KEY);
            CREATE TABLE d (id int PRIMARY KEY);
            """)
        try target.sql(
            """
            DROP ROLE IF EXISTS pgsink_chk_writer;
            CREATE ROLE pgsink_chk_writer LOGIN;
            CREATE TABLE a (id int PRIMARY KEY, v text);
            CREATE TABLE b (id int, v text);
            CREATE TABLE d (id int PRIMARY KEY);
            GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON a, b TO pgsink_chk_writer;
            GRANT SELECT ON d TO pgsink_chk_writer;
            REVOKE CREATE ON DATABASE \(target.name) FROM PUBLIC;
            """)
        let directory = try TestEnvironment.scratchDirectory("pgsink_check")
        let writer = target.url.replacingOccurrences(of: "postgres@", with: "pgsink_chk_writer@")
        let config = (directory as NSString).appendingPathComponent("pgbridge.yaml")
        try """
        postgres: {url: "\(source.url)"}
        state_dir: \(directory)/state
        pipes:
          - name: p
            source: {kind: replication, tables: [public.a, public.b, public.c, public.d]}
            sinks: [{name: replica, kind: postgres, url: "\(writer)"}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let check = try await BridgeProcess.run(["check", "--config", config], directory: directory)
        let lines = check.stderr.split(separator: "\n").filter { $0.contains("sink replica:") }.map(String.init)
        func has(_ text: String) -> Bool { lines.contains { $0.contains(text) } }
        #expect(has("public.a → \"public\".\"a\": the target lacks column(s) extra"), "\(lines)")
        #expect(has("public.b → \"public\".\"b\": no primary key or unique index on (\"id\")"), "\(lines)")
        #expect(has("public.c → \"public\".\"c\": the target table does not exist"), "\(lines)")
        #expect(has("public.d → \"public\".\"d\": the target role lacks INSERT, UPDATE, DELETE, TRUNCATE"), "\(lines)")
        #expect(has("pgbridge.sink_positions is missing and the target role may not create it"), "\(lines)")
        #expect(lines.count == 5, "one line per problem: \(lines)")
        #expect(
            try target.value("SELECT to_regclass('pgbridge.sink_positions') IS NULL") == "t", "check creates nothing")
    }
}

extension PostgresSinkTests {
    /// A column added on the source: dead-lettered with the fix by default, added to the target
    /// with `on_new_column: add`.
    @Test func newSourceColumnsAreDeadLetteredOrAdded() async throws {
        let source = try TestDatabase(prefix: "pgsink_drift_src")
        let strict = try TestDatabase(prefix: "pgsink_drift_a")
        let adding = try TestDatabase(prefix: "pgsink_drift_b")
        defer {
            source.drop()
            strict.drop()
            adding.drop()
        }
        for db in [source, strict, adding] { try db.sql("CREATE TABLE m (id int PRIMARY KEY, v text)") }
        let slot = "pgbridge_\(source.name)"
        let pipe = try InProcessPipe(
            database: source, name: "pgsink_drift", tables: ["public.m"],
            sinks: [
                try Self.sink(strict, source: source, slot: slot, name: "strict"),
                try Self.sink(adding, source: source, slot: slot, name: "adding", settings: ", on_new_column: add"),
            ], withFileSink: false)
        try await pipe.startStreaming(source)
        try source.sql("INSERT INTO m VALUES (1, 'before')")
        try source.sql("ALTER TABLE m ADD COLUMN w numeric(8, 2) NOT NULL DEFAULT 0")
        try source.sql("INSERT INTO m VALUES (2, 'after', 12.5)")
        try await waitFor("the new column on the adding target", timeout: .seconds(90)) {
            (try? adding.sql("SELECT id, v, w FROM m ORDER BY id").map { $0.map { $0 ?? "NULL" } })
                == [["1", "before", "NULL"], ["2", "after", "12.50"]]
        }
        #expect(
            try adding.value(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'm'::regclass AND attname = 'w'"
            )
                == "numeric(8,2)", "added with the source's type")
        let dead = try await EventFile.waitFor(pipe.deadLetterPath, timeout: .seconds(90)) { $0.count >= 1 }
        #expect(dead.count == 1 && dead[0]["sink"] as? String == "strict")
        let reason = dead.first?["reason"] as? String ?? ""
        #expect(reason.contains("has no column w") && reason.contains("on_new_column: add"), "\(reason)")
        #expect(try strict.sql("SELECT id FROM m ORDER BY id").map { $0[0] } == ["1"], "the rest still applies")
        try await pipe.stop()
    }

    /// A target that is the source table itself is refused before anything is written, and a
    /// role that may not create `pgbridge.sink_positions` is told to run `pgbridge setup`.
    @Test func refusesALoopAndSaysHowToPrepareATarget() async throws {
        let source = try TestDatabase(prefix: "pgsink_loop")
        let target = try TestDatabase(prefix: "pgsink_perm")
        defer {
            source.drop()
            target.drop(roles: ["pgsink_no_create"])
        }
        try source.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let slot = "pgbridge_\(source.name)"
        let loop = try Self.sink(source, source: source, slot: slot, name: "loop")
        await #expect {
            try await loop.sink.open()
        } throws: { error in
            "\(error)".contains("the target is the source database and table {schema}.{table}")
                && "\(error)".contains("(a loop)")
        }
        try target.sql(
            """
            DROP ROLE IF EXISTS pgsink_no_create;
            CREATE ROLE pgsink_no_create LOGIN;
            REVOKE CREATE ON DATABASE \(target.name) FROM PUBLIC;
            """)
        let limited = target.url.replacingOccurrences(of: "postgres@", with: "pgsink_no_create@")
        let sink = try Self.sink(url: limited, source: source, slot: slot, name: "limited")
        await #expect {
            try await sink.sink.open()
        } throws: { error in
            "\(error)".contains("cannot create pgbridge.sink_positions") && "\(error)".contains("pgbridge setup --url")
        }
        await sink.sink.close()
    }
}
