import Foundation
import Testing

/// A replication connection that the network closes (both ends see it end): pgbridge says so,
/// reconnects by itself and every row arrives.
@Suite("A dropped replication connection", .enabled(if: TestEnvironment.hasBinary))
struct DroppedConnectionTests {
    @Test func aDroppedConnectionIsNamedAndStreamingResumes() async throws {
        let db = try TestDatabase(prefix: "dropped")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let target = try #require(URLComponents(string: db.url)?.port)
        let proxy = try TCPProxy(targetPort: target)
        defer { proxy.stop() }
        var components = try #require(URLComponents(string: db.url))
        components.port = proxy.port
        let proxied = try #require(components.string)
        let directory = try TestEnvironment.scratchDirectory("dropped")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: proxied, tables: ["public.t"], slot: slot, output: output)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        try await waitForSlot(db, slot)
        try db.sql("INSERT INTO t SELECT generate_series(1, 10)")
        _ = try await EventFile.waitFor(output) { $0.count >= 10 }

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
