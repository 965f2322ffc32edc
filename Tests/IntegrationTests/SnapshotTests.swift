import BridgeCore
import Foundation
import Testing

/// Initial snapshots consistent with the slot; serialised (they run the binary on big tables).
@Suite("Initial snapshot", .serialized, .enabled(if: TestEnvironment.hasBinary))
struct SnapshotTests {
    func start(_ db: TestDatabase, tables: [String], name: String, extra: String = "", arguments: [String] = [])
        throws -> (BridgeProcess, output: String, directory: String)
    {
        let directory = try TestEnvironment.scratchDirectory(name)
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: tables, slot: "pgbridge_\(db.name)", output: output,
            extraSource: "snapshot: initial" + (extra.isEmpty ? "" : "\n      " + extra))
        let bridge = try BridgeProcess(arguments: ["run", "--config", config] + arguments, directory: directory)
        return (bridge, output, directory)
    }

    /// Applies events in file order to a map of id → v (what a consumer would hold).
    func apply(_ events: [[String: Any]]) -> [Int: Int] {
        var state: [Int: Int] = [:]
        for event in events {
            switch event.op {
            case "read", "insert", "update":
                if let before = event.before?["id"] as? Int, let after = event.after?["id"] as? Int, before != after {
                    state[before] = nil
                }
                if let id = event.after?["id"] as? Int { state[id] = event.after?["v"] as? Int }
            case "delete":
                if let id = event.key?["id"] as? Int { state[id] = nil }
            default:
                break
            }
        }
        return state
    }

    @Test func snapshotPlusStreamEqualsTheTableUnderConcurrentWrites() async throws {
        let db = try TestDatabase(prefix: "snap")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE snap (id int PRIMARY KEY, v int NOT NULL, note text);
            INSERT INTO snap SELECT g, 0, 'row ' || g FROM generate_series(1, 100000) g;
            ANALYZE snap;
            """)
        let writer = Inserter(url: db.url)
        writer.start(transactions: 4000, rowsPerTransaction: 1, pause: .milliseconds(1), table: "snap") { index, _ in
            switch index % 3 {
            case 0: return "INSERT INTO snap VALUES (\(100_000 + index), 0, 'new') ON CONFLICT DO NOTHING"
            case 1: return "UPDATE snap SET v = v + 1 WHERE id = \(index * 7919 % 100_000 + 1)"
            default: return "DELETE FROM snap WHERE id = \(index * 104_729 % 100_000 + 1)"
            }
        }
        // The snapshot starts while the writes are under way.
        try await waitFor("the first writes") { writer.commits.count >= 100 }
        let (bridge, output, directory) = try start(
            db, tables: ["public.snap"], name: "snap", extra: "snapshot_batch_rows: 2000")
        try await writer.waitUntilDone()
        let final = Dictionary(
            uniqueKeysWithValues: try db.sql("SELECT id, v FROM snap").map { (Int($0[0]!)!, Int($0[1]!)!) })
        let events = try await EventFile.waitFor(output, timeout: .seconds(120)) { apply($0) == final }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        let consumer = apply(events)
        #expect(consumer.count == final.count)
        #expect(consumer == final, "\(Set(final.keys).symmetricDifference(consumer.keys).count) keys differ")
        // No duplicate: every row read once, every streamed change once, and nothing streamed
        // that the snapshot already contained (all stream commits are after the consistent point).
        let reads = events.filter { $0.op == "read" }
        let readIDs = reads.compactMap { $0.after?["id"] as? Int }
        #expect(Set(readIDs).count == readIDs.count)
        #expect(reads.count > 90_000)
        let eventIDs = events.compactMap(\.eventID)
        #expect(Set(eventIDs).count == eventIDs.count)
        let point = try #require((reads.first?["source"] as? [String: Any])?["commit_lsn"] as? String).flatMap {
            LSN($0)
        }
        let streamed = events.filter { $0.op != "read" }
        // Changes streamed after the consistent point (how many depends on how fast the slot was
        // created while the writer ran: about 3,900 writes in all).
        #expect(streamed.count > 250, "\(streamed.count) changes streamed")
        let allAfter = streamed.allSatisfy { event in
            ((event["source"] as? [String: Any])?["commit_lsn"] as? String).flatMap { LSN($0) }.map { $0 > point! }
                ?? false
        }
        #expect(allAfter)
        #expect((reads.first?["source"] as? [String: Any])?["capture"] as? String == "snapshot")
        let progress = try String(contentsOfFile: "\(directory)/state/test.snapshot", encoding: .utf8)
        #expect(progress.hasPrefix("status\tdone"))
    }

    @Test func snapshotOfAMillionRowsHasBoundedMemory() async throws {
        let db = try TestDatabase(prefix: "snapbig")
        defer { db.drop() }
        let rows = 1_000_000
        try db.sql(
            """
            CREATE TABLE big (id bigint PRIMARY KEY, device text, temperature float8, at timestamptz);
            INSERT INTO big SELECT g, 'device-' || (g % 100), g * 0.01, '2026-01-01'::timestamptz + g * interval '1 second'
            FROM generate_series(1, \(rows)) g;
            ANALYZE big;
            """)
        let (bridge, output, _) = try start(
            db, tables: ["public.big"], name: "snapbig", arguments: ["--stop-after-events", String(rows)])
        var peak = 0
        let deadline = ContinuousClock.now + .seconds(400)
        while bridge.isRunning && ContinuousClock.now < deadline {
            peak = max(peak, bridge.peakRSS() ?? 0)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await bridge.waitForExit() == 0, "\(bridge.stderr.suffix(1000))")
        #expect(try EventFile.countLines(output) == rows)
        print("snapshot of \(rows) rows: peak RSS \(peak / 1_048_576) MiB")
        #expect(peak > 0 && peak < 100 * 1_048_576, "peak RSS \(peak / 1_048_576) MiB")
    }

    @Test func interruptedSnapshotResumesWithoutRereadingFinishedChunks() async throws {
        let db = try TestDatabase(prefix: "snapresume")
        defer { db.drop() }
        try db.sql(TimescaleFixture.sql)
        try db.sql(
            """
            CREATE TABLE conditions (time timestamptz NOT NULL, device int NOT NULL, v int, PRIMARY KEY (time, device));
            SELECT _timescaledb_catalog.fixture_create_hypertable('conditions');
            INSERT INTO conditions SELECT '2026-01-01'::timestamptz + d * interval '1 day' + s * interval '1 second', s % 7, d
            FROM generate_series(0, 5) d, generate_series(0, 19999) s;
            """)
        let total = 6 * 20_000
        let tables = ["public.conditions"]
        var (bridge, output, directory) = try start(
            db, tables: tables, name: "snapresume", extra: "snapshot_batch_rows: 500")
        let progressPath = "\(directory)/state/test.snapshot"
        var doneBeforeKill: Set<String> = []
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: progressPath, encoding: .utf8)) ?? ""
            let done = text.split(separator: "\n").filter { $0.hasPrefix("done\t") }
            if done.count >= 2 {
                bridge.kill(SIGKILL)
                _ = try await bridge.waitForExit()
                let after = (try? String(contentsOfFile: progressPath, encoding: .utf8)) ?? text
                doneBeforeKill = Set(
                    after.split(separator: "\n").filter { $0.hasPrefix("done\t") }.map { String($0.dropFirst(5)) })
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(doneBeforeKill.count >= 2 && doneBeforeKill.count < 6, "killed after \(doneBeforeKill.count) chunks")
        // Restart with the same configuration and state.
        bridge = try BridgeProcess(arguments: ["run", "--config", "\(directory)/pgbridge.yaml"], directory: directory)
        let events = try await EventFile.waitFor(output, timeout: .seconds(120)) { events in
            Set(events.compactMap { $0.op == "read" ? "\($0.after?["time"] ?? "")/\($0.after?["device"] ?? "")" : nil })
                .count >= total
        }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        #expect(bridge.stderr.contains("resuming the interrupted snapshot"))
        let reads = events.filter { $0.op == "read" }
        let keys = Set(reads.map { "\($0.after?["time"] ?? "")/\($0.after?["device"] ?? "")" })
        #expect(keys.count == total)
        var perChunk: [String: Int] = [:]
        for read in reads {
            if let chunk = (read["source"] as? [String: Any])?["chunk"] as? String { perChunk[chunk, default: 0] += 1 }
        }
        for chunk in doneBeforeKill {
            #expect(perChunk[chunk] == 20_000, "chunk \(chunk) was read \(perChunk[chunk] ?? 0) times for 20000 rows")
        }
        let allHypertable = reads.allSatisfy { $0.table == "conditions" }
        #expect(allHypertable)
    }

    @Test func snapshotCommandRereadsOneTable() async throws {
        let db = try TestDatabase(prefix: "snapcmd")
        defer { db.drop() }
        try db.sql(TimescaleFixture.sql)
        try db.sql(
            """
            CREATE TABLE other (id int PRIMARY KEY);
            INSERT INTO other SELECT generate_series(1, 10);
            CREATE TABLE conditions (time timestamptz NOT NULL, device int NOT NULL, v int, PRIMARY KEY (time, device));
            SELECT _timescaledb_catalog.fixture_create_hypertable('conditions');
            INSERT INTO conditions SELECT '2026-01-01'::timestamptz + s * interval '1 hour', 1, s FROM generate_series(0, 99) s;
            """)
        let directory = try TestEnvironment.scratchDirectory("snapcmd")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.other", "public.conditions"],
            slot: "pgbridge_\(db.name)",
            output: output)
        let result = try await BridgeProcess.run(
            ["snapshot", "test", "public.conditions", "--config", config], directory: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let events = EventFile.read(output)
        #expect(events.count == 100)
        let allReads = events.allSatisfy { $0.op == "read" && $0.table == "conditions" }
        #expect(allReads)
        #expect(Set(events.compactMap { $0.after?["v"] as? Int }) == Set(0...99))
        let chunks = Set(events.compactMap { ($0["source"] as? [String: Any])?["chunk"] as? String })
        #expect(chunks.count == 5)  // 100 hours = 5 daily chunks
        let missing = try await BridgeProcess.run(
            ["snapshot", "test", "public.nope", "--config", config], directory: directory)
        #expect(missing.status == 3 && missing.stderr.contains("table public.nope does not exist"))
        let noPipe = try await BridgeProcess.run(
            ["snapshot", "nope", "public.other", "--config", config], directory: directory)
        #expect(noPipe.status == 2 && noPipe.stderr.contains("no pipe named 'nope'"))
    }

    @Test func snapshotReadsKeywordColumnsAndUsesTheStreamsKeys() async throws {
        let db = try TestDatabase(prefix: "snapkw")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE kw (id int PRIMARY KEY, "user" text, "order" int);
            INSERT INTO kw VALUES (1, 'alice', 10), (2, 'bob', 20);
            CREATE TABLE byindex (code text NOT NULL, v int);
            CREATE UNIQUE INDEX byindex_code ON byindex (code);
            ALTER TABLE byindex REPLICA IDENTITY USING INDEX byindex_code;
            INSERT INTO byindex VALUES ('a', 1), ('b', 2);
            """)
        let (bridge, output, _) = try start(db, tables: ["public.kw", "public.byindex"], name: "snapkw")
        try await waitForSlot(db, "pgbridge_\(db.name)")
        try db.sql("UPDATE byindex SET v = 3 WHERE code = 'a'")
        let events = try await EventFile.waitFor(output) { $0.count >= 5 }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        let kw = events.filter { $0.table == "kw" }
        #expect(kw.compactMap { $0.after?["user"] as? String } == ["alice", "bob"])
        #expect(kw.compactMap { $0.after?["order"] as? Int } == [10, 20])
        let byIndex = events.filter { $0.table == "byindex" }
        #expect(byIndex.map(\.op) == ["read", "read", "update"])
        // Snapshot rows carry the same key as streamed changes of the same table.
        #expect(byIndex.compactMap { $0.key?["code"] as? String } == ["a", "b", "a"])
    }

    @Test func snapshotRangeBoundsHypertables() async throws {
        let db = try TestDatabase(prefix: "snaprange")
        defer { db.drop() }
        try db.sql(TimescaleFixture.sql)
        try db.sql(
            """
            CREATE TABLE conditions (time timestamptz NOT NULL, device int NOT NULL, v int, PRIMARY KEY (time, device));
            SELECT _timescaledb_catalog.fixture_create_hypertable('conditions');
            INSERT INTO conditions SELECT '2026-01-01'::timestamptz + d * interval '1 day' + s * interval '1 hour', 1, d
            FROM generate_series(0, 3) d, generate_series(0, 9) s;
            CREATE TABLE plain (id int PRIMARY KEY);
            INSERT INTO plain SELECT generate_series(1, 5);
            """)
        let (bridge, output, _) = try start(
            db, tables: ["public.conditions", "public.plain"], name: "snaprange",
            extra: "snapshot_range: {start: '2026-01-02T00:00:00Z', end: '2026-01-04T00:00:00Z'}")
        let events = try await EventFile.waitFor(output) { $0.filter { $0.op == "read" }.count >= 25 }
        // A streamed sentinel comes after the whole snapshot: a row read beyond the range would
        // be in the file by then.
        try db.sql("INSERT INTO plain VALUES (100)")
        _ = try await EventFile.waitFor(output) { events in
            events.contains { $0.op == "insert" && $0.after?["id"] as? Int == 100 }
        }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        let reads = EventFile.read(output).filter { $0.op == "read" }
        #expect(reads.filter { $0.table == "plain" }.count == 5)
        let days = reads.filter { $0.table == "conditions" }.compactMap { $0.after?["v"] as? Int }
        #expect(days.count == 20 && Set(days) == [1, 2], "\(days)")
        // Chunks are read oldest first.
        #expect(days == days.sorted())
        #expect(events.count >= 25)
    }
}
