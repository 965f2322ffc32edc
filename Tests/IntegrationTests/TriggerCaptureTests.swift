import BridgeCore
import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

/// Trigger capture: the SQL extension, the outbox source and raw NOTIFY channels.
@Suite("Trigger capture (outbox and NOTIFY)", .serialized, .enabled(if: TestEnvironment.hasBinary))
struct TriggerCaptureTests {
    func outboxConfig(_ db: TestDatabase, directory: String, channel: String = "pgbridge", extra: String = "") throws
        -> (String, String)
    {
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let path = (directory as NSString).appendingPathComponent("pgbridge.yaml")
        try """
        postgres:
          url: \(db.url)
        state_dir: \(directory)/state
        pipes:
          - name: outbox
            source: {kind: outbox, channel: \(channel), poll_interval: 1s\(extra)}
            sinks: [{kind: file, path: \(output)}]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, output)
    }

    @Test func createExtensionAndSetup() async throws {
        let db = try TestDatabase(prefix: "ext")
        defer { db.drop() }
        // scripts/test installs the extension files (and fails when it cannot).
        let installed = FileManager.default.fileExists(atPath: "/usr/share/postgresql/15/extension/pgbridge.control")
        try #require(installed, "the pgbridge extension files are not installed: run scripts/test")
        try db.sql("CREATE EXTENSION pgbridge")
        #expect(try db.value("SELECT extversion FROM pg_extension WHERE extname = 'pgbridge'") == "0.4")
        #expect(try db.value("SELECT to_regprocedure('pgbridge.watch(regclass,text,text[])') IS NOT NULL") == "t")
        #expect(try db.value("SELECT has_function_privilege('public', 'pgbridge.capture()', 'EXECUTE')") == "f")
        let plain = try TestDatabase(prefix: "setup")
        defer { plain.drop() }
        let directory = try TestEnvironment.scratchDirectory("setup")
        for _ in 0..<2 {
            let result = try await BridgeProcess.run(["setup", "--url", plain.url], directory: directory)
            #expect(result.status == 0, "\(result.stderr)")
        }
        #expect(try plain.value("SELECT version FROM pgbridge.setup") == "0.4")
        #expect(
            try plain.value("SELECT to_regclass('pgbridge.sink_positions') IS NOT NULL") == "t",
            "setup --url <target> prepares a postgres sink's target")
        #expect(try plain.value("SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgbridge'::regnamespace") == "4")
        try plain.sql(
            "CREATE TABLE t (id int PRIMARY KEY, v text); SELECT pgbridge.watch('t', 'c1', '{id}'); INSERT INTO t VALUES (1, 'x');"
        )
        let event = try #require(try plain.value("SELECT event::text FROM pgbridge.outbox"))
        #expect(event.contains("\"after\": {\"id\": 1}"), "\(event)")  // only the watched columns
        try plain.sql("SELECT pgbridge.unwatch('t'); INSERT INTO t VALUES (2, 'y');")
        #expect(try plain.value("SELECT count(*) FROM pgbridge.outbox") == "1")
        // An application role may write watched tables but cannot touch the outbox itself.
        let role = "app_\(plain.name)"
        try plain.sql(
            """
            CREATE ROLE \(role) LOGIN;
            CREATE TABLE w (id int PRIMARY KEY, v text);
            GRANT INSERT, UPDATE ON w TO \(role);
            SELECT pgbridge.watch('w', 'c2');
            """)
        defer { _ = try? plain.sql("DROP OWNED BY \(role); DROP ROLE \(role)") }
        let app = try PGConnection(
            url: TestEnvironment.url(
                plain.serverURL.replacingOccurrences(of: "postgres@", with: "\(role)@"), database: plain.name),
            mode: .normal)
        try app.execute("INSERT INTO w VALUES (1, 'by app')")
        #expect(throws: PostgresError.self) {
            try app.execute("INSERT INTO pgbridge.outbox (channel, event) VALUES ('c2', '{}')")
        }
        #expect(try plain.value("SELECT count(*) FROM pgbridge.outbox WHERE channel = 'c2'") == "1")
        // Nor attach the SECURITY DEFINER capture function to a table of its own to forge events.
        try plain.sql("GRANT CREATE ON SCHEMA public TO \(role)")
        try app.execute("CREATE TABLE mine (id int PRIMARY KEY)")
        #expect {
            try app.execute(
                "CREATE TRIGGER forge AFTER INSERT ON mine FOR EACH ROW EXECUTE FUNCTION pgbridge.capture('c2')")
        } throws: { error in
            (error as? PostgresError)?.sqlState == "42501"
        }
        #expect(throws: PostgresError.self) { try plain.sql("SELECT pgbridge.watch('w', '')") }
    }

    @Test func outboxDeliversEverythingAcrossDowntimeAndKills() async throws {
        let db = try TestDatabase(prefix: "outbox")
        defer { db.drop() }
        let directory = try TestEnvironment.scratchDirectory("outbox")
        _ = try await BridgeProcess.run(["setup", "--url", db.url], directory: directory)
        try db.sql(
            """
            CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL);
            SELECT pgbridge.watch('acct');
            """)
        // 20,000 changes while pgbridge is not running.
        try db.sql(
            """
            INSERT INTO acct SELECT g, 0 FROM generate_series(1, 10000) g;
            DO $$ BEGIN FOR i IN 1..10 LOOP UPDATE acct SET balance = balance + 1 WHERE id % 10 = i - 1; END LOOP; END $$;
            """)
        #expect(try db.value("SELECT count(*) FROM pgbridge.outbox") == "20000")
        let (config, output) = try outboxConfig(db, directory: directory)
        func launch() throws -> BridgeProcess {
            try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        }
        var bridge = try launch()
        // 20,000 more while it runs, killed twice with SIGKILL.
        let writer = Inserter(url: db.url)
        writer.start(transactions: 2000, rowsPerTransaction: 10, pause: .milliseconds(2), table: "acct") { index, _ in
            "UPDATE acct SET balance = balance + 1 WHERE id BETWEEN \(index % 1000 * 10 + 1) AND \(index % 1000 * 10 + 10)"
        }
        var kills = 0
        while !writer.isDone && kills < 2 {
            try await Task.sleep(for: .milliseconds(1500))
            bridge.kill(SIGKILL)
            _ = try await bridge.waitForExit()
            kills += 1
            bridge = try launch()
        }
        try await writer.waitUntilDone()
        #expect(kills == 2)
        let deadline = ContinuousClock.now + .seconds(120)
        while try db.value("SELECT count(*) FROM pgbridge.outbox") != "0", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        #expect(try db.value("SELECT count(*) FROM pgbridge.outbox") == "0")
        let events = EventFile.read(output)
        let ids = Set(events.compactMap(\.eventID))
        #expect(ids.count == 40_000, "\(ids.count) distinct events of 40000 (\(events.count) delivered)")
        // Per key: the first delivery of each event shows balances in commit order.
        let (outOfOrder, last) = EventFile.firstDeliveryOrder(events, key: "id", value: "balance")
        #expect(outOfOrder == 0)
        let final = Dictionary(
            uniqueKeysWithValues: try db.sql("SELECT id, balance FROM acct").map { (Int($0[0]!)!, Int($0[1]!)!) })
        #expect(last == final)
        #expect(events.first?["source"].flatMap { ($0 as? [String: Any])?["capture"] as? String } == "outbox")
    }

    @Test func twoReplicasNeverDeliverARowTwice() async throws {
        let db = try TestDatabase(prefix: "outboxha")
        defer { db.drop() }
        let directory = try TestEnvironment.scratchDirectory("outboxha")
        _ = try await BridgeProcess.run(["setup", "--url", db.url], directory: directory)
        try db.sql("CREATE TABLE t (id int PRIMARY KEY); SELECT pgbridge.watch('t');")
        var outputs: [String] = []
        var bridges: [BridgeProcess] = []
        for replica in 0..<2 {
            let replicaDirectory = try TestEnvironment.scratchDirectory("outboxha-\(replica)")
            let (config, output) = try outboxConfig(db, directory: replicaDirectory, extra: ", batch_rows: 50")
            outputs.append(output)
            bridges.append(try BridgeProcess(arguments: ["run", "--config", config], directory: replicaDirectory))
        }
        // Both replicas poll the outbox before the rows come, so that both can take some.
        for bridge in bridges {
            try await bridge.waitForLog("pipe running")
        }
        let writer = Inserter(url: db.url)
        writer.start(transactions: 500, rowsPerTransaction: 10, pause: .milliseconds(1), table: "t") { _, first in
            "INSERT INTO t SELECT generate_series(\(first), \(first + 9))"
        }
        try await writer.waitUntilDone()
        let deadline = ContinuousClock.now + .seconds(60)
        while try db.value("SELECT count(*) FROM pgbridge.outbox") != "0", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        for bridge in bridges {
            bridge.kill(SIGTERM)
            #expect(try await bridge.waitForExit() == 0)
        }
        let first = EventFile.read(outputs[0]).compactMap(\.eventID)
        let second = EventFile.read(outputs[1]).compactMap(\.eventID)
        #expect(Set(first).isDisjoint(with: second), "\(Set(first).intersection(second).count) rows delivered by both")
        #expect(Set(first).union(second).count == 5000)
        #expect(first.count + second.count == 5000)
        // Both replicas drained: a replica that never took a row would pass the checks above.
        #expect(!first.isEmpty && !second.isEmpty, "rows per replica: \(first.count) and \(second.count)")
    }

    /// A table watched on a channel no pipe listens to: its rows would stay in the outbox for
    /// good; pgbridge says so once, with the channel and the fix, and delivers the rest.
    @Test func rowsOnAChannelNobodyListensToAreReported() async throws {
        let db = try TestDatabase(prefix: "outboxorphan")
        defer { db.drop() }
        let directory = try TestEnvironment.scratchDirectory("outboxorphan")
        _ = try await BridgeProcess.run(["setup", "--url", db.url], directory: directory)
        try db.sql(
            """
            CREATE TABLE orders (id int PRIMARY KEY); SELECT pgbridge.watch('orders');
            CREATE TABLE users (id int PRIMARY KEY); SELECT pgbridge.watch('users', 'users');
            """)
        let (config, output) = try outboxConfig(db, directory: directory)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        try db.sql("INSERT INTO users VALUES (1), (2); INSERT INTO orders VALUES (1)")
        _ = try await EventFile.waitFor(output) { $0.count >= 1 }
        let expected = "2 rows of pgbridge.outbox wait on channel users, which no pipe of this pgbridge listens to"
        try await waitFor("the warning", timeout: .seconds(30)) { bridge.stderr.contains(expected) }
        // Later polls (another order, seen after two more poll intervals) do not repeat it.
        try await Task.sleep(for: .seconds(3))
        try db.sql("INSERT INTO orders VALUES (2)")
        let later = try await EventFile.waitFor(output) { $0.count >= 2 }
        #expect(bridge.stderr.components(separatedBy: "wait on channel users").count == 2, "warned once")
        #expect(later.map(\.table) == ["orders", "orders"])
        #expect(try db.value("SELECT count(*) FROM pgbridge.outbox WHERE channel = 'users'") == "2")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }

    @Test func largeEventAndHypertableThroughTheOutbox() async throws {
        let db = try TestDatabase(prefix: "outboxbig")
        defer { db.drop() }
        let directory = try TestEnvironment.scratchDirectory("outboxbig")
        _ = try await BridgeProcess.run(["setup", "--url", db.url], directory: directory)
        try db.sql(TimescaleFixture.sql)
        try db.sql(
            """
            CREATE TABLE docs (id int PRIMARY KEY, body text);
            SELECT pgbridge.watch('docs', 'big');
            CREATE TABLE conditions (time timestamptz NOT NULL, device text NOT NULL, temp float8, PRIMARY KEY (time, device));
            SELECT _timescaledb_catalog.fixture_create_hypertable('conditions');
            SELECT pgbridge.watch('conditions', 'big');
            """)
        let (config, output) = try outboxConfig(db, directory: directory, channel: "big")
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        try db.sql(
            """
            INSERT INTO docs VALUES (1, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 32768) i));
            INSERT INTO conditions VALUES ('2026-01-01 10:00+00', 'd1', 20.5), ('2026-01-02 10:00+00', 'd1', 21.5);
            """)
        let events = try await EventFile.waitFor(output) { $0.count >= 3 }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        let body = try #require(events.first { $0.table == "docs" }?.after?["body"] as? String)
        #expect(body.utf8.count == 32768 * 32)  // 1 MiB, intact
        #expect(body == (try db.value("SELECT body FROM docs")))
        let readings = events.filter { $0.table == "conditions" }
        #expect(readings.count == 2)
        let chunks = readings.compactMap { ($0["source"] as? [String: Any])?["chunk"] as? String }
        #expect(chunks == ["_timescaledb_internal._hyper_1_1_chunk", "_timescaledb_internal._hyper_1_2_chunk"])
    }

    @Test func rawNotifyChannels() async throws {
        // SQL_ASCII lets a payload hold bytes that are not UTF-8.
        let admin = try PGConnection(url: try #require(TestEnvironment.postgresURL), mode: .normal)
        let name = "notify_\(UUID().uuidString.prefix(8).lowercased())"
        try admin.execute("CREATE DATABASE \(name) ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        defer { _ = try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        let url = TestEnvironment.url(try #require(TestEnvironment.postgresURL), database: name)
        let directory = try TestEnvironment.scratchDirectory("notify")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let config = (directory as NSString).appendingPathComponent("pgbridge.yaml")
        try """
        postgres: {url: "\(url)"}
        pipes:
          - name: raw
            source: {kind: notify, channels: [sales_data_channel, alerts]}
            sinks: [{kind: file, path: \(output)}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        let client = try PGConnection(url: url, mode: .normal)
        var listening = false
        for _ in 0..<100 where !listening {
            listening =
                try client.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
                .string(0, 0) != "0"
            try await Task.sleep(for: .milliseconds(100))
        }
        try client.execute(
            """
            SELECT pg_notify('sales_data_channel', json_build_object('sku', 'A-1', 'qty', 3)::text);
            SELECT pg_notify('alerts', 'disk almost full');
            SELECT pg_notify('alerts', '{not json');
            SELECT pg_notify('alerts', E'bad \\xff byte');
            """)
        let events = try await EventFile.waitFor(output) { $0.count >= 4 }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        try #require(events.count == 4, "\(events)")
        #expect(events.allSatisfy { $0.op == "message" })
        let channels = events.compactMap { ($0["source"] as? [String: Any])?["channel"] as? String }
        #expect(channels == ["sales_data_channel", "alerts", "alerts", "alerts"])
        #expect(events[0].after?["sku"] as? String == "A-1" && events[0].after?["qty"] as? Int == 3)
        #expect(events[1].after?["payload"] as? String == "disk almost full")
        #expect(events[2].after?["payload"] as? String == "{not json")
        #expect(events[3].after?["payload"] as? String == "bad \u{FFFD} byte")
        #expect(bridge.stderr.contains("is not valid UTF-8"))
        #expect(bridge.stderr.contains("looks like JSON but is not a JSON object"))
        #expect((events[0]["source"] as? [String: Any])?["capture"] as? String == "notify")
    }
}
