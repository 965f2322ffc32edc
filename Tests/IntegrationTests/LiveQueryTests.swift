import Foundation
import JWTKit
import Synchronization
import Testing

@testable import PostgresClient

/// Live queries: a filtered `GET` with `Accept: text/event-stream` while 10,000 rows are
/// written in small transactions. Each client's snapshot plus its events end up equal to the
/// query's final result, with no row sent twice as new, and each role only sees its rows.
@Suite("REST proxy live queries", .enabled(if: TestEnvironment.hasBinary))
struct LiveQueryTests {
    static let secret = "live-query-test-secret-0123456789abcdef"

    func token(_ role: String) async throws -> String {
        try await RoleTokens.sign(role: role, secret: Self.secret)
    }

    /// What one client holds: rows by id, and the protocol mistakes it saw.
    final class ClientState: Sendable {
        struct State {
            var rows: [Int: [String: Any]] = [:]
            var duplicates: [Int] = []
            var foreign: [Int] = []
            var unknownDeletes = 0
            var snapshotRows = 0
            var events = 0
        }
        let state = Mutex(State())
        let owner: String
        init(owner: String) { self.owner = owner }

        /// Applies one SSE event; false once the sentinel row arrived.
        func apply(_ name: String, _ data: String, sentinel: Int) -> Bool {
            state.withLock { state in
                let parsed = try? JSONSerialization.jsonObject(with: Data(data.utf8))
                switch name {
                case "snapshot":
                    for row in parsed as? [[String: Any]] ?? [] {
                        guard let id = row["id"] as? Int else { continue }
                        if state.rows[id] != nil { state.duplicates.append(id) }
                        if row["owner"] as? String != owner { state.foreign.append(id) }
                        state.rows[id] = row
                        state.snapshotRows += 1
                    }
                case "insert", "update":
                    guard let row = parsed as? [String: Any], let id = row["id"] as? Int else { return true }
                    state.events += 1
                    if name == "insert", state.rows[id] != nil { state.duplicates.append(id) }
                    if row["owner"] as? String != owner { state.foreign.append(id) }
                    state.rows[id] = row
                    if id == sentinel { return false }
                case "delete":
                    guard let key = parsed as? [String: Any], let id = key["id"] as? Int else { return true }
                    state.events += 1
                    if state.rows.removeValue(forKey: id) == nil { state.unknownDeletes += 1 }
                default:
                    break
                }
                return true
            }
        }
    }

    @Test func snapshotAndChangesEqualTheFinalResultPerRole() async throws {
        let db = try TestDatabase(prefix: "live")
        defer { db.drop() }
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_alice", "pgbridge_test_bob"))
            CREATE TABLE tasks (id int PRIMARY KEY, owner text NOT NULL, status text NOT NULL, n int NOT NULL);
            INSERT INTO tasks SELECT g, CASE WHEN g % 2 = 0 THEN 'pgbridge_test_alice' ELSE 'pgbridge_test_bob' END,
              CASE WHEN g % 3 = 0 THEN 'done' ELSE 'open' END, 0 FROM generate_series(1, 500) g;
            ALTER TABLE tasks REPLICA IDENTITY FULL;
            ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
            CREATE POLICY own ON tasks USING (owner = current_user);
            GRANT SELECT ON tasks TO pgbridge_test_alice, pgbridge_test_bob;
            """)
        let directory = try TestEnvironment.scratchDirectory("live-\(db.name)")
        let slot = "live_\(db.name)"
        let config = try ConfigFile.write(
            """
            postgres: {url: "\(db.url)"}
            state_dir: \(directory)/state
            api: {listen: "127.0.0.1:0", jwt_secret: \(Self.secret), buffer_events: 100000}
            pipes:
              - name: live
                source: {tables: [public.tasks], slot: \(slot)}
                sinks: [{kind: file, path: \(directory)/events.jsonl}]
            """, in: directory)
        let bridge = try BridgeProcess.run(config: config, directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        try await waitForSlot(db, slot)
        let base = "http://127.0.0.1:\(port)"

        // 10,000 writes in transactions of 5: inserts, status flips and deletes, both owners.
        let url = db.url
        let aliceState = ClientState(owner: "pgbridge_test_alice")
        let bobState = ClientState(owner: "pgbridge_test_bob")
        let writer = Task {
            try await TestEnvironment.offPool {
                let connection = try PGConnection(url: url, mode: .normal)
                for batch in 0..<2_000 {
                    // Half of the writes at the latest come after both snapshots were read.
                    let deadline = ContinuousClock.now + .seconds(120)
                    while batch >= 1_000, ContinuousClock.now < deadline,
                        aliceState.state.withLock({ $0.snapshotRows }) == 0
                            || bobState.state.withLock({ $0.snapshotRows }) == 0
                    {
                        usleep(10_000)
                    }
                    var statements = ["BEGIN"]
                    for step in 0..<5 {
                        let i = batch * 5 + step
                        let id = 1_000 + i
                        // Owners alternate by groups of four, so each has inserts that survive.
                        let owner = (i / 4) % 2 == 0 ? "pgbridge_test_alice" : "pgbridge_test_bob"
                        switch i % 4 {
                        case 0, 1:
                            statements.append(
                                "INSERT INTO tasks VALUES (\(id), '\(owner)', '\(i % 3 == 0 ? "done" : "open")', \(i))")
                        case 2:
                            statements.append(
                                "UPDATE tasks SET status = CASE status WHEN 'open' THEN 'done' ELSE 'open' END, n = \(i) WHERE id = \(1 + i % 500)"
                            )
                        default:
                            statements.append("DELETE FROM tasks WHERE id = \(1_000 + i - 3)")
                        }
                    }
                    statements.append("COMMIT")
                    _ = try connection.execute(statements.joined(separator: "; "))
                    // Paced (at least 1 s in all), so that the clients subscribe in the midst.
                    if batch % 20 == 0 { usleep(10_000) }
                }
            }
        }

        func subscribe(_ state: ClientState, sentinel: Int) async throws -> ClientState {
            let client = APIClient(base: base, token: try await token(state.owner))
            try await client.streamEvents(
                "/v1/tables/tasks?status=eq.open&owner=like.pgbridge*", headers: [("Accept", "text/event-stream")],
                timeout: .seconds(240)
            ) { name, _, data in
                state.apply(name, data, sentinel: sentinel)
            }
            return state
        }
        // Subscribe while the writes run, so the snapshot is taken in their midst.
        try await Task.sleep(for: .milliseconds(200))
        async let alice = subscribe(aliceState, sentinel: 900_000)
        async let bob = subscribe(bobState, sentinel: 900_001)
        try await writer.value
        // Sentinels: the last changes; a client has everything before it once it arrives.
        try db.sql(
            "INSERT INTO tasks VALUES (900000, 'pgbridge_test_alice', 'open', 0), (900001, 'pgbridge_test_bob', 'open', 0)"
        )
        let states = try await [("pgbridge_test_alice", alice), ("pgbridge_test_bob", bob)]
        for (role, state) in states {
            let expected = try db.sql("SELECT id, n FROM tasks WHERE status = 'open' AND owner = '\(role)' ORDER BY id")
                .compactMap { row -> (Int, Int)? in
                    guard let id = row[0].flatMap({ Int($0) }), let n = row[1].flatMap({ Int($0) }) else { return nil }
                    return (id, n)
                }
            let held = state.state.withLock { $0 }
            #expect(
                held.snapshotRows > 0 && held.events > 100,
                "\(role): snapshot \(held.snapshotRows), events \(held.events)")
            #expect(held.duplicates.isEmpty, "\(role) got rows twice as new: \(held.duplicates.prefix(10))")
            #expect(held.foreign.isEmpty, "\(role) saw other owners' rows: \(held.foreign.prefix(10))")
            let got = held.rows.keys.sorted().map { ($0, held.rows[$0]?["n"] as? Int ?? -1) }
            #expect(got.map(\.0) == expected.map(\.0), "\(role): \(got.count) rows held, \(expected.count) expected")
            #expect(got.map(\.1) == expected.map(\.1), "\(role): the rows' values differ from the table's")
        }
    }

    /// A truncate, a key change and a reconnect: the stream carries on, the old key is deleted,
    /// and a reconnect with Last-Event-ID starts over with `reset` and a fresh snapshot.
    @Test func truncatesKeyChangesAndReconnects() async throws {
        let db = try TestDatabase(prefix: "live_edge")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
            INSERT INTO items VALUES (1, 'one'), (2, 'two');
            """)
        let directory = try TestEnvironment.scratchDirectory("live-\(db.name)")
        let slot = "live_edge_\(db.name)"
        let config = try ConfigFile.write(
            """
            postgres: {url: "\(db.url)"}
            state_dir: \(directory)/state
            api: {listen: "127.0.0.1:0", anonymous_role: pgbridge_test_live_reader}
            pipes:
              - name: live
                source: {tables: [public.items], slot: \(slot)}
                sinks: [{kind: file, path: \(directory)/events.jsonl}]
            """, in: directory)
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_live_reader"))
            GRANT SELECT ON items TO pgbridge_test_live_reader;
            """)
        let bridge = try BridgeProcess.run(config: config, directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        try await waitForSlot(db, slot)
        let client = APIClient(base: "http://127.0.0.1:\(port)", token: nil)
        let seen = Mutex<[(String, String, String)]>([])
        try await client.streamEvents(
            "/v1/tables/items", headers: [("Accept", "text/event-stream")], timeout: .seconds(120),
            onOpen: {
                try db.sql("UPDATE items SET id = 10 WHERE id = 1")
                try db.sql("TRUNCATE items")
                try db.sql("INSERT INTO items VALUES (3, 'three')")
            }
        ) { name, id, data in
            seen.withLock { $0.append((name, id, data)) }
            return !(name == "insert" && data.contains("three"))
        }
        let events = seen.withLock { $0 }
        #expect(events.first?.0 == "snapshot" && events.first?.2.contains("two") == true)
        let names = events.dropFirst().map(\.0)
        #expect(names.contains("delete"), "the old key 1 is deleted: \(events)")
        #expect(events.contains { $0.0 == "delete" && $0.2 == #"{"id" : 1}"# }, "\(events)")
        #expect(names.contains("truncate"), "\(events)")
        #expect(names.last == "insert")

        // Reconnecting with the last id: reset, then the table as it is now.
        let lastID = try #require(events.last?.1)
        let again = Mutex<[(String, String)]>([])
        try await client.streamEvents(
            "/v1/tables/items", headers: [("Accept", "text/event-stream"), ("Last-Event-ID", lastID)]
        ) { name, _, data in
            again.withLock { $0.append((name, data)) }
            return name != "snapshot"
        }
        let resumed = again.withLock { $0 }
        #expect(resumed.map(\.0) == ["reset", "snapshot"], "\(resumed)")
        #expect(resumed.last?.1.contains("three") == true && resumed.last?.1.contains("two") == false)
    }

}
