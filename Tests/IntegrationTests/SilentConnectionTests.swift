import Foundation
import Testing

/// Replication connections that die under pgbridge, through a TCP proxy between it and
/// PostgreSQL: one that goes silent without closing (a failover behind a NAT, a firewall
/// dropping the flow: Linux sends no keepalive while status updates are unacknowledged, so only
/// pgbridge's own receive_timeout notices), and one that the network closes.
@Suite("Replication connections that die", .enabled(if: TestEnvironment.hasBinary))
struct SilentConnectionTests {
    struct Proxied {
        let db: TestDatabase
        let proxy: TCPProxy
        let bridge: BridgeProcess
        let output: String
    }

    /// A table `t`, pgbridge streaming it through a proxy, and rows 1–10 delivered.
    static func startThroughProxy(_ label: String, extraSource: String = "") async throws -> Proxied {
        let db = try TestDatabase(prefix: label)
        var proxy: TCPProxy?
        var bridge: BridgeProcess?
        do {
            try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
            let started = try TCPProxy(targetPort: try #require(URLComponents(string: db.url)?.port))
            proxy = started
            var components = try #require(URLComponents(string: db.url))
            components.port = started.port
            let directory = try TestEnvironment.scratchDirectory(label)
            let output = (directory as NSString).appendingPathComponent("events.jsonl")
            let slot = "pgbridge_\(db.name)"
            let config = try ConfigFile.write(
                directory: directory, url: try #require(components.string), tables: ["public.t"], slot: slot,
                output: output, extraSource: extraSource)
            let running = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
            bridge = running
            try await waitForSlot(db, slot)
            try db.sql("INSERT INTO t SELECT generate_series(1, 10)")
            _ = try await EventFile.waitFor(output) { $0.count >= 10 }
            return Proxied(db: db, proxy: started, bridge: running, output: output)
        } catch {
            bridge?.kill(SIGKILL)
            proxy?.stop()
            db.drop()
            throw error
        }
    }

    static func stop(_ proxied: Proxied) {
        proxied.bridge.kill(SIGKILL)
        proxied.proxy.stop()
        proxied.db.drop()
    }

    @Test func aSilentConnectionIsReplacedWithinTheReceiveTimeoutAndEveryRowArrives() async throws {
        let proxied = try await Self.startThroughProxy("silent", extraSource: "receive_timeout: 4s")
        defer { Self.stop(proxied) }
        let (db, proxy, bridge, output) = (proxied.db, proxied.proxy, proxied.bridge, proxied.output)

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

    /// A connection that the network closes (both ends see it end): pgbridge says so, reconnects
    /// by itself and every row arrives.
    @Test func aDroppedConnectionIsNamedAndStreamingResumes() async throws {
        let proxied = try await Self.startThroughProxy("dropped")
        defer { Self.stop(proxied) }
        let (db, proxy, bridge, output) = (proxied.db, proxied.proxy, proxied.bridge, proxied.output)

        proxy.closeExistingConnections()
        try await waitFor("the lost connection to be reported", timeout: .seconds(60)) {
            bridge.stderr.contains("lost the replication connection to ")
        }
        try db.sql("INSERT INTO t SELECT generate_series(11, 20)")
        let events = try await EventFile.waitFor(output, timeout: .seconds(90)) { events in
            Set(events.compactMap { $0.after?["id"] as? Int }).count >= 20
        }
        #expect(Set(events.compactMap { $0.after?["id"] as? Int }) == Set(1...20), "\(bridge.stderr.suffix(2500))")
        let line = bridge.stderr.split(separator: "\n").first { $0.contains("lost the replication connection to ") }
        #expect(line?.contains(" warning ") == true, "logged as a warning: \(line ?? "")")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }
}
