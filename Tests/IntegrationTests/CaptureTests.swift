import BridgeCore
import Foundation
import Testing

@Suite("Replication capture on a real PostgreSQL 15", .enabled(if: TestEnvironment.hasPostgres))
struct CaptureTests {
    @Test func insertUpdateDeleteTruncateWithEveryReplicaIdentity() async throws {
        let db = try TestDatabase(prefix: "crud")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE t_default (id int PRIMARY KEY, name text, qty int);
            CREATE TABLE t_full (id int PRIMARY KEY, name text, qty int);
            ALTER TABLE t_full REPLICA IDENTITY FULL;
            CREATE TABLE t_full_nopk (a int, b text);
            ALTER TABLE t_full_nopk REPLICA IDENTITY FULL;
            CREATE TABLE t_index (id int PRIMARY KEY, code text NOT NULL, qty int);
            CREATE UNIQUE INDEX t_index_code ON t_index (code);
            ALTER TABLE t_index REPLICA IDENTITY USING INDEX t_index_code;
            """)
        let pipe = try InProcessPipe(database: db, name: "crud", tables: ["public.*"])
        try await pipe.startStreaming(db)
        try db.sql(
            """
            INSERT INTO t_default VALUES (1, 'a', 1), (2, 'b', 2);
            UPDATE t_default SET qty = 10 WHERE id = 1;
            UPDATE t_default SET id = 3 WHERE id = 2;
            DELETE FROM t_default WHERE id = 1;
            INSERT INTO t_full VALUES (1, 'x', 1);
            UPDATE t_full SET qty = 5 WHERE id = 1;
            DELETE FROM t_full WHERE id = 1;
            INSERT INTO t_full_nopk VALUES (7, 'seven');
            UPDATE t_full_nopk SET b = 'SEVEN' WHERE a = 7;
            INSERT INTO t_index VALUES (1, 'A', 1);
            UPDATE t_index SET code = 'B' WHERE id = 1;
            DELETE FROM t_index WHERE id = 1;
            TRUNCATE t_default, t_full;
            """)
        let events = try await pipe.waitForEvents(count: 15)
        try await pipe.stop()
        #expect(events.count == 15)
        let byTable = Dictionary(grouping: events) { $0.table ?? "" }

        let d = try #require(byTable["t_default"])
        #expect(d.map(\.op) == ["insert", "insert", "update", "update", "delete", "truncate"])
        #expect(d[2].before == nil && d[2].after?["qty"] as? Int == 10)
        #expect(d[3].key?["id"] as? Int == 3 && d[3].before?["id"] as? Int == 2 && d[3].before?.count == 1)
        #expect(d[4].key?["id"] as? Int == 1 && d[4].before?.count == 1)

        let f = try #require(byTable["t_full"])
        #expect(f.map(\.op) == ["insert", "update", "delete", "truncate"])
        #expect(f[1].before?["qty"] as? Int == 1 && f[1].before?["name"] as? String == "x")
        #expect(f[1].key?.count == 1 && f[1].key?["id"] as? Int == 1)  // primary key, not every column
        #expect(f[2].before?.count == 3)

        let n = try #require(byTable["t_full_nopk"])
        #expect(n.map(\.op) == ["insert", "update"])
        #expect(n[1].before?["b"] as? String == "seven")
        #expect(n[1].key?.count == 2)  // no primary key: the whole row identifies it

        let i = try #require(byTable["t_index"])
        #expect(i.map(\.op) == ["insert", "update", "delete"])
        #expect(i[1].key?["code"] as? String == "B" && i[1].before?["code"] as? String == "A")
        #expect(i[2].key?["code"] as? String == "B")

        // Events of one transaction share the commit LSN and count up.
        let ids = events.compactMap(\.eventID)
        #expect(Set(ids).count == ids.count)
    }

    @Test func onlyCapturedTablesAreReportedFromASharedPublication() async throws {
        let db = try TestDatabase(prefix: "shared")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE watched (id int PRIMARY KEY);
            CREATE TABLE other (id int PRIMARY KEY);
            CREATE PUBLICATION pgbridge_\(db.name) FOR ALL TABLES;
            """)
        let pipe = try InProcessPipe(database: db, name: "shared", tables: ["public.watched"])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO other VALUES (1); INSERT INTO watched VALUES (2); INSERT INTO other VALUES (3);")
        // A later transaction: once it arrives, everything before it has (nothing more may come).
        try db.sql("INSERT INTO watched VALUES (4)")
        _ = try await EventFile.waitFor(pipe.outputPath) { events in events.contains { $0.after?["id"] as? Int == 4 } }
        try await pipe.stop()
        let events = pipe.events()
        #expect(events.map(\.table) == ["watched", "watched"])
        #expect(events.compactMap { $0.after?["id"] as? Int } == [2, 4])
    }

    @Test func typeMatrixRoundTrips() async throws {
        let db = try TestDatabase(prefix: "types")
        defer { db.drop() }
        // A non-UTC server zone proves that pgbridge's session forces UTC output.
        try db.sql(
            """
            ALTER DATABASE \(db.name) SET timezone TO 'America/New_York';
            CREATE TYPE mood AS ENUM ('sad', 'happy');
            CREATE DOMAIN posint AS int CHECK (VALUE > 0);
            CREATE TABLE matrix (
              id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric,
              t text, vc varchar(10), c char(3), u uuid, j json, jb jsonb, by bytea, d date, tm time,
              ts timestamp, tz timestamptz, iv interval, ai int4[], at text[], m mood, p posint);
            """)
        try db.reconnect()
        let pipe = try InProcessPipe(database: db, name: "types", tables: ["matrix"])
        try await pipe.startStreaming(db)
        try db.sql(
            """
            INSERT INTO matrix VALUES (1, true, 7, -8, 9000000000, 1.25, 'NaN', 3.14159265358979323846,
              E'line\\nbreak "q" \\\\ \\x01 é', 'vc', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
              '{"k": [1, 2]}', '{"z": null}', '\\x00ff10', '2024-02-29', '23:59:59.5',
              '2024-02-29 12:00:00', '2024-02-29 12:00:00.123-05', '1 day 02:03:04', '{1,NULL,3}',
              '{"x,y",NULL,""}', 'happy', 5);
            INSERT INTO matrix (id) VALUES (2);
            """)
        let events = try await pipe.waitForEvents(count: 2)
        try await pipe.stop()
        let row = try #require(events.first?.after)
        #expect(row["b"] as? Bool == true)
        #expect(row["i2"] as? Int == 7 && row["i4"] as? Int == -8 && row["i8"] as? Int == 9_000_000_000)
        #expect(row["f4"] as? Double == 1.25 && row["f8"] as? String == "NaN")
        #expect(row["n"] as? String == "3.14159265358979323846")
        #expect(row["t"] as? String == "line\nbreak \"q\" \\ \u{01} é")
        #expect(row["vc"] as? String == "vc" && row["c"] as? String == "ab ")
        #expect(row["u"] as? String == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        #expect((row["j"] as? [String: Any])?["k"] as? [Int] == [1, 2])
        #expect((row["jb"] as? [String: Any])?["z"] is NSNull)
        #expect(row["by"] as? String == "AP8Q")
        #expect(row["d"] as? String == "2024-02-29")
        #expect(row["tm"] as? String == "23:59:59.5")
        #expect(row["ts"] as? String == "2024-02-29T12:00:00")
        #expect(row["tz"] as? String == "2024-02-29T17:00:00.123000Z")
        #expect(row["iv"] as? String == "1 day 02:03:04")
        let ai = try #require(row["ai"] as? [Any])
        #expect(ai.count == 3 && ai[0] as? Int == 1 && ai[1] is NSNull && ai[2] as? Int == 3)
        let at = try #require(row["at"] as? [Any])
        #expect(at.count == 3 && at[0] as? String == "x,y" && at[1] is NSNull && at[2] as? String == "")
        #expect(row["m"] as? String == "happy" && row["p"] as? String == "5")
        let source = try #require(events.first?["source"] as? [String: Any])
        let commitTime = try #require(source["commit_time"] as? String)
        #expect(commitTime.hasSuffix("Z") && commitTime.count == 27)
        let nulls = try #require(events.last?.after)
        #expect(nulls.count == 24)
        let allNull = nulls.filter { $0.key != "id" }.allSatisfy { $0.value is NSNull }
        #expect(allNull)
    }

    @Test func unchangedToastIsReported() async throws {
        let db = try TestDatabase(prefix: "toast")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE docs (id int PRIMARY KEY, body text, note text);
            ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
            """)
        let pipe = try InProcessPipe(database: db, name: "toast", tables: ["docs"])
        try await pipe.startStreaming(db)
        try db.sql(
            """
            INSERT INTO docs VALUES (1, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 500) i), 'v1');
            UPDATE docs SET note = 'v2' WHERE id = 1;
            """)
        let events = try await pipe.waitForEvents(count: 2)
        try await pipe.stop()
        try #require(events.count >= 2, "\(events)")
        #expect((events[0].after?["body"] as? String)?.count == 16_000)
        #expect(events[1]["unchanged_toast"] as? [String] == ["body"])
        #expect(events[1].after?["body"] == nil)
        #expect(events[1].after?["note"] as? String == "v2")
    }

    @Test func addColumnMidStream() async throws {
        let db = try TestDatabase(prefix: "alter")
        defer { db.drop() }
        try db.sql("CREATE TABLE evolving (id int PRIMARY KEY, name text)")
        let pipe = try InProcessPipe(database: db, name: "alter", tables: ["evolving"])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO evolving VALUES (1, 'before')")
        _ = try await pipe.waitForEvents(count: 1)
        try db.sql(
            """
            ALTER TABLE evolving ADD COLUMN extra text DEFAULT 'd';
            INSERT INTO evolving VALUES (2, 'after', 'new!');
            UPDATE evolving SET name = 'again' WHERE id = 1;
            """)
        let events = try await pipe.waitForEvents(count: 3)
        try await pipe.stop()
        try #require(events.count >= 3, "\(events)")
        #expect(events[0].after?.count == 2)
        #expect(events[1].after?["extra"] as? String == "new!")
        #expect(events[2].after?["extra"] as? String == "d")
    }

    @Test func logicalMessagesAndQuietTablesAdvanceTheSlot() async throws {
        let db = try TestDatabase(prefix: "idle")
        defer { db.drop() }
        try db.sql("CREATE TABLE watched (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY);")
        let slot = "pgbridge_\(db.name)"
        let pipe = try InProcessPipe(database: db, name: "idle", tables: ["watched"])
        try await pipe.startStreaming(db)
        try db.sql("SELECT pg_logical_emit_message(true, 'app', 'hello')")
        try db.sql("SELECT pg_logical_emit_message(false, 'app', 'outside')")
        let events = try await pipe.waitForEvents(count: 2)
        #expect(events.map(\.op) == ["message", "message"])
        #expect(events.last?.after?["content"] as? String == "outside")
        let outside = try #require(events.last?["source"] as? [String: Any])
        #expect(outside["xid"] as? Int == 0)
        let year = (outside["commit_time"] as? String)?.prefix(4)
        #expect(year.flatMap { Int($0) }.map { $0 >= 2024 } == true, "commit_time \(outside["commit_time"] ?? "-")")
        // Writes to an unpublished table only: the slot must still move forward.
        let before = try #require(try db.slotConfirmedLSN(slot))
        try db.sql("INSERT INTO other SELECT generate_series(1, 1000)")
        let target = try #require(try db.value("SELECT pg_current_wal_lsn()::text").flatMap { LSN($0) })
        try db.sql("SELECT pg_switch_wal()")
        let deadline = ContinuousClock.now + .seconds(30)
        var confirmed = before
        while ContinuousClock.now < deadline {
            confirmed = try db.slotConfirmedLSN(slot) ?? confirmed
            if confirmed >= target { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        try await pipe.stop()
        #expect(confirmed >= target, "slot stayed at \(confirmed), WAL is at \(target)")
        #expect(pipe.events().count == 2)
    }
}
