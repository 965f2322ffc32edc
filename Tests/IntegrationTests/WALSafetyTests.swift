import Foundation
import Testing

/// What keeps a slot from holding WAL without bound: heartbeats for quiet tables, and the lag
/// guard (`max_lag_bytes`) that makes a stuck pipe visible.
@Suite("WAL safety", .serialized, .enabled(if: TestEnvironment.hasBinary))
struct WALSafetyTests {

    static func lag(_ db: TestDatabase, _ slot: String) throws -> Int64 {
        Int64(
            try db.value(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = '\(slot)'"
            ) ?? "-1") ?? -1
    }

    /// Heartbeat messages (prefix `pgbridge.heartbeat`) written into the WAL of `db` so far,
    /// read through a test_decoding probe slot that nobody consumes.
    static func heartbeats(_ db: TestDatabase, probe: String) throws -> Int {
        Int(
            try db.value(
                "SELECT count(*) FROM pg_logical_slot_peek_changes('\(probe)', NULL, NULL) WHERE data LIKE 'message:%prefix: pgbridge.heartbeat%'"
            ) ?? "0") ?? 0
    }

    static func quietPipe(_ db: TestDatabase, _ directory: String, slot: String, heartbeat: String) throws -> String {
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        pipes:
          - name: quiet
            source: {kind: replication, tables: [public.quiet], slot: \(slot), publication: \(slot), heartbeat_interval: \(heartbeat)}
            sinks: [{kind: file, path: \(directory)/events.jsonl}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        return config
    }

    /// A pipe on a table nobody writes, in a database where another table gets 60 MB of WAL:
    /// with heartbeats its slot confirms past the end of that burst within seconds (the test
    /// cluster is shared, so the lag itself never reaches zero while other tests write). The
    /// heartbeats themselves are proven by a test_decoding probe slot in the pipe's database; the
    /// same pipe with `heartbeat_interval: 0`, in a database of its own, writes none.
    @Test func heartbeatsKeepAQuietSlotAdvancing() async throws {
        let db = try TestDatabase(prefix: "heartbeat")
        defer { db.drop() }
        let control = try TestDatabase(prefix: "heartbeat_off")
        defer { control.drop() }
        var bridges: [BridgeProcess] = []
        var directories: [String] = []
        defer {
            for bridge in bridges { bridge.kill(SIGTERM) }
            _ = try? TestEnvironment.shell("sleep 1")
        }
        let slot = "hb_\(db.name)"
        let controlSlot = "hb_\(control.name)"
        for (database, pipeSlot, heartbeat) in [(db, slot, "500ms"), (control, controlSlot, "0")] {
            try database.sql(
                "CREATE TABLE quiet (id int PRIMARY KEY); CREATE TABLE busy (id int PRIMARY KEY, payload text)")
            try database.sql("SELECT pg_create_logical_replication_slot('probe_\(database.name)', 'test_decoding')")
            let directory = try TestEnvironment.scratchDirectory("heartbeat-\(database.name)")
            directories.append(directory)
            let config = try Self.quietPipe(database, directory, slot: pipeSlot, heartbeat: heartbeat)
            bridges.append(try BridgeProcess(arguments: ["run", "--config", config], directory: directory))
            try await waitForSlot(database, pipeSlot)
        }
        let started = ContinuousClock.now
        var peak: Int64 = 0
        for part in 0..<6 {
            try db.sql(
                "INSERT INTO busy SELECT g, repeat('x', 300) FROM generate_series(\(part * 30_000 + 1), \((part + 1) * 30_000)) g"
            )
            peak = max(peak, try Self.lag(db, slot))
        }
        let burstEnd = try db.value("SELECT pg_current_wal_lsn()") ?? "0/0"
        var settled: Int64 = -1
        try await waitFor("the quiet slot to confirm past the burst", timeout: .seconds(30)) {
            settled = try Self.lag(db, slot)
            return try db.value(
                "SELECT confirmed_flush_lsn >= '\(burstEnd)' FROM pg_replication_slots WHERE slot_name = '\(slot)'")
                == "t"
        }
        #expect(settled < peak, "the lag fell after the burst")

        // Heartbeats every 500 ms: at least three within a few seconds; none without them. The
        // probe skips the burst (decoding 60 MB on every look would be slow).
        _ = try db.value("SELECT pg_replication_slot_advance('probe_\(db.name)', '\(burstEnd)')")
        try await waitFor("three heartbeats in the pipe's database", timeout: .seconds(20)) {
            try Self.heartbeats(db, probe: "probe_\(db.name)") >= 3
        }
        let controlHeartbeats = try Self.heartbeats(control, probe: "probe_\(control.name)")
        #expect(controlHeartbeats == 0, "heartbeat_interval: 0 wrote \(controlHeartbeats) heartbeats")
        print(
            "heartbeat: peak lag \(peak) bytes during the writes, \(settled) bytes \(ContinuousClock.now - started) after they began (the burst ended at \(burstEnd)); \(try Self.heartbeats(db, probe: "probe_\(db.name)")) heartbeats seen by the probe, \(controlHeartbeats) without heartbeats"
        )
        #expect(bridges.allSatisfy { $0.isRunning })
        let events = (try? String(contentsOfFile: "\(directories[0])/events.jsonl", encoding: .utf8)) ?? ""
        #expect(!events.contains("pgbridge.heartbeat"), "heartbeats are not events")
    }

    /// A sink held down: the slot's lag passes max_lag_bytes, `/readyz` fails and says so, the
    /// metrics show it, and the log says it loudly.
    @Test func lagAboveTheLimitFailsReadiness() async throws {
        let db = try TestDatabase(prefix: "lagguard")
        defer { db.drop() }
        try db.sql("CREATE TABLE items (id int PRIMARY KEY, payload text)")
        let directory = try TestEnvironment.scratchDirectory("lagguard-\(db.name)")
        let slot = "lag_\(db.name)"
        let config = try ConfigFile.writeWithAPI(
            directory: directory, url: db.url,
            rest: """
                pipes:
                  - name: stuck
                    source: {kind: replication, tables: [public.items], slot: \(slot), publication: \(slot), max_lag_bytes: 1048576}
                    sinks: [{kind: http, url: "http://127.0.0.1:9/hook", retry_interval: 100ms}]
                """)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer {
            bridge.kill(SIGTERM)
            _ = try? TestEnvironment.shell("sleep 1")
        }
        let port = try await APIClient.waitForPort(bridge)
        let api = APIClient(base: "http://127.0.0.1:\(port)", token: HTTPAPITests.adminToken)
        try await waitForSlot(db, slot)
        try db.sql("INSERT INTO items SELECT g, repeat('y', 500) FROM generate_series(1, 10000) g")
        var readiness = ""
        try await waitFor("/readyz to report the slot lag", timeout: .seconds(60)) {
            let reply = try await api.request(.GET, "/readyz")
            readiness = reply.body
            return reply.status == 503 && reply.body.contains("more than max_lag_bytes (1048576)")
        }
        #expect(readiness.contains("slot \(slot) retains"), "\(readiness)")
        let metrics = try await api.request(.GET, "/metrics").body
        #expect(metrics.contains("pgbridge_slot_lag_exceeded{pipe=\"stuck\"} 1"), "\(metrics.prefix(3000))")
        #expect(metrics.contains("pgbridge_slot_max_lag_bytes{pipe=\"stuck\"} 1048576"))
        try await waitFor("the loud log line", timeout: .seconds(30)) {
            bridge.stderr.contains("slot \(slot) retains ")
                && bridge.stderr.contains(
                    " bytes of WAL, more than max_lag_bytes (1048576): a sink is down or too slow, or the pipe is stopped"
                )
        }
        #expect(try Self.lag(db, slot) > 1_048_576)
        // The sink is still down: SIGTERM gives its delivery up after the 8 s grace and exits 0.
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit(timeout: .seconds(30)) == 0, "\(bridge.stderr.suffix(1500))")
        #expect(bridge.stderr.contains("did not finish its delivery within 8"), "\(bridge.stderr.suffix(1500))")
    }
}
