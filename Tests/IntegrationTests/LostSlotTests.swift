import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

/// A slot whose WAL PostgreSQL removed (`max_slot_wal_keep_size` exceeded, `wal_status = lost`)
/// while the sink was down: the CHECKPOINT that invalidates it does not wait for pgbridge (which
/// closes a replication connection it stopped reading), the pipe stops with the reason,
/// `/readyz` and `/metrics` show it, and a start without the API exits with code 3. On a private
/// cluster, whose settings the test changes.
@Suite("A lost slot", .enabled(if: PostgresPair.isAvailable))
struct LostSlotTests {

    @Test func aLostSlotIsReportedEverywhere() async throws {
        let pair = try PostgresPair(name: "lostslot")
        defer { pair.destroy() }
        let admin = try PGConnection(url: pair.primaryURL, mode: .normal)
        try admin.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '32MB'")
        try admin.execute("SELECT pg_reload_conf()")
        try admin.execute("CREATE TABLE items (id int PRIMARY KEY, payload text)")

        let directory = try TestEnvironment.scratchDirectory("lostslot")
        let slot = "pgbridge_lostslot"
        // The sink is down: nothing is confirmed, so the slot holds its WAL until it is lost.
        let pipes = """
            pipes:
              - name: lost
                source: {kind: replication, tables: [public.items], slot: \(slot), publication: \(slot)}
                sinks: [{kind: http, url: "http://127.0.0.1:9/hook", retry_interval: 100ms}]
            """
        let withAPI = try ConfigFile.writeWithAPI(
            directory: directory, url: pair.primaryURL, rest: pipes, name: "with-api.yaml")
        let bridge = try BridgeProcess(arguments: ["run", "--config", withAPI], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let api = APIClient(
            base: "http://127.0.0.1:\(try await APIClient.waitForPort(bridge))", token: HTTPAPITests.adminToken)
        try await waitFor("the slot", timeout: .seconds(60)) {
            try admin.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '\(slot)' AND active")
                .string(0, 0) == "1"
        }
        try admin.execute("INSERT INTO items VALUES (1, 'held by the slot')")

        // 16 MB of WAL per round, a segment switch and a checkpoint, until the slot is lost.
        var round = 0
        try await waitFor("wal_status = lost", timeout: .seconds(120)) {
            round += 1
            try admin.execute(
                "INSERT INTO items SELECT g, repeat('w', 1000) FROM generate_series(\(round * 100_000), \(round * 100_000 + 15_000)) g"
            )
            try admin.execute("SELECT pg_switch_wal()")
            // A walsender that cannot send its last message would make this wait forever.
            try admin.execute("SET statement_timeout = '60s'")
            try admin.execute("CHECKPOINT")
            return try admin.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = '\(slot)'")
                .string(0, 0) == "lost"
        }

        // The stream let go of the walsender it could not read from (the sink is down), which is
        // what let the CHECKPOINT above return.
        let pause = bridge.stderr.split(separator: "\n").first { $0.contains("the sinks took no events for") } ?? ""
        #expect(
            pause.contains(
                "the sinks took no events for 10s while the replication stream waited for them: closing the replication connection until they take events again"
            ), "\(bridge.stderr.suffix(2000))")
        #expect(pause.contains(" warning "), "logged as a warning: \(pause)")
        let reason = "replication slot \(slot) was invalidated (wal_status = lost)"
        try await waitFor("the pipe to stop with the reason", timeout: .seconds(60)) {
            bridge.stderr.contains(reason)
        }
        var readiness = ""
        try await waitFor("/readyz to name the lost slot", timeout: .seconds(30)) {
            let reply = try await api.request(.GET, "/readyz")
            readiness = reply.body
            return reply.status == 503 && reply.body.contains("wal_status = lost")
        }
        #expect(readiness.contains(slot), "\(readiness)")
        let metrics = try await api.request(.GET, "/metrics").body
        #expect(metrics.contains("pgbridge_slot_lost{pipe=\"lost\"} 1"), "\(metrics.prefix(3000))")
        let line = bridge.stderr.split(separator: "\n").first { $0.contains(reason) } ?? ""
        #expect(line.contains(" error "), "logged at error level: \(line)")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)

        // Without the API the process ends with exit code 3 and the reason.
        let withoutAPI = "\(directory)/without-api.yaml"
        try """
        postgres: {url: "\(pair.primaryURL)"}
        state_dir: \(directory)/state
        \(pipes)
        """.write(toFile: withoutAPI, atomically: true, encoding: .utf8)
        let again = try await BridgeProcess.run(["run", "--config", withoutAPI], directory: directory)
        #expect(again.status == 3, "\(again.stderr.suffix(2000))")
        #expect(again.stderr.contains(reason), "\(again.stderr.suffix(2000))")
    }
}
