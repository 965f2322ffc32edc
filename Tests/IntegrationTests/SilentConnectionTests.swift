import Foundation
import Testing

/// A replication connection that goes silent without closing (a failover behind a NAT, a
/// firewall dropping the flow): Linux sends no keepalive while status updates are unacknowledged,
/// so only pgbridge's own receive_timeout notices.
@Suite("A silently dead replication connection", .enabled(if: TestEnvironment.hasBinary))
struct SilentConnectionTests {
    @Test func aSilentConnectionIsReplacedWithinTheReceiveTimeoutAndEveryRowArrives() async throws {
        let db = try TestDatabase(prefix: "silent")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let target = try #require(URLComponents(string: db.url)?.port)
        let proxy = try TCPProxy(targetPort: target)
        defer { proxy.stop() }
        var components = try #require(URLComponents(string: db.url))
        components.port = proxy.port
        let proxied = try #require(components.string)
        let directory = try TestEnvironment.scratchDirectory("silent")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: proxied, tables: ["public.t"], slot: slot, output: output,
            extraSource: "receive_timeout: 4s")
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        try await waitForSlot(db, slot)
        try db.sql("INSERT INTO t SELECT generate_series(1, 10)")
        _ = try await EventFile.waitFor(output) { $0.count >= 10 }

        proxy.blackholeExistingConnections()
        let connectionsBefore = proxy.connectionCount
        try db.sql("INSERT INTO t SELECT generate_series(11, 20)")
        let events = try await EventFile.waitFor(output, timeout: .seconds(90)) { events in
            Set(events.compactMap { $0.after?["id"] as? Int }).count >= 20
        }
        let ids = Set(events.compactMap { $0.after?["id"] as? Int })
        #expect(ids == Set(1...20), "\(bridge.stderr.suffix(2500))")
        #expect(proxy.connectionCount > connectionsBefore, "pgbridge opened no new connection")
        #expect(
            bridge.stderr.contains("no message from PostgreSQL for")
                && bridge.stderr.contains(
                    "(receive_timeout 4.0 seconds): the replication connection is treated as lost"),
            "\(bridge.stderr.suffix(2500))")
        // The old walsender held the slot: pgbridge ended it instead of waiting for wal_sender_timeout.
        #expect(bridge.stderr.contains("still held by this pipe's previous walsender"), "\(bridge.stderr.suffix(2500))")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }
}
