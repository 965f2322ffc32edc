import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

/// A standby promoted after its primary died (asynchronous streaming, so it lacks the primary's
/// last transactions) behind a stable address: pgbridge must neither skip the new primary's
/// transactions nor silently create a lost slot again.
@Suite("Failover to a promoted standby", .serialized, .enabled(if: PostgresPair.isAvailable))
struct FailoverTests {
    struct Setup {
        let pair: PostgresPair
        let proxy: TCPProxy
        let directory: String
        let output: String
        let slot = "pgbridge_failover"

        func config(extraSource: String = "") throws -> String {
            var components = URLComponents(string: pair.primaryURL)!
            components.port = proxy.port
            return try ConfigFile.write(
                directory: directory, url: components.string!, tables: ["public.t"], slot: slot, output: output,
                extraSource: "receive_timeout: 5s" + (extraSource.isEmpty ? "" : "\n      " + extraSource))
        }

        func ids() -> Set<Int> { Set(EventFile.read(output).compactMap { $0.after?["id"] as? Int }) }
    }

    /// Rows 1–50 reach the standby; then the standby stops, the primary writes rows 51–60 in a
    /// large transaction (pgbridge delivers them, its positions move past everything the standby
    /// has) and dies; the standby is promoted.
    func failOver(_ name: String, createSlot: Bool, bridgeArguments: (Setup) throws -> BridgeProcess) async throws
        -> (Setup, BridgeProcess)
    {
        let pair = try PostgresPair(name: name)
        let proxy = try TCPProxy(targetPort: pair.primaryPort)
        let setup = Setup(
            pair: pair, proxy: proxy, directory: try TestEnvironment.scratchDirectory(name),
            output: "\(try TestEnvironment.scratchDirectory(name))/events.jsonl")
        let primary = try PGConnection(url: pair.primaryURL, mode: .normal)
        try primary.execute("CREATE TABLE t (id int PRIMARY KEY, pad text)")
        let bridge = try bridgeArguments(setup)
        // The walsender is listed from the moment the replication connection opens, while it
        // still creates the slot: rows committed before the slot is consistent are not decoded.
        // Only 'streaming' (after START_REPLICATION) means every later commit reaches pgbridge.
        try await waitFor("pgbridge to stream from the primary", timeout: .seconds(60)) {
            try primary.execute(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pgbridge' AND state = 'streaming'"
            ).string(0, 0) == "1"
        }
        try primary.execute("INSERT INTO t SELECT g, 'a' FROM generate_series(1, 50) g")
        try pair.startStandby()
        try await pair.waitForStandbyToCatchUp()
        try pair.stopStandby()
        try primary.execute("INSERT INTO t SELECT g, repeat('b', 200000) FROM generate_series(51, 60) g")
        do {
            try await waitFor("rows 1–60 from the old primary", timeout: .seconds(90)) { setup.ids().count == 60 }
        } catch {
            bridge.kill(SIGKILL)
            let missing = Set(1...60).subtracting(setup.ids()).sorted()
            Issue.record("missing ids \(missing); pgbridge's output: \(bridge.stderr.suffix(3000))")
            throw error
        }
        try pair.killPrimary()
        try pair.restartStandby()
        try pair.promoteStandby()
        if createSlot {
            let promoted = try PGConnection(url: pair.standbyURL, mode: .normal)
            try promoted.execute("SELECT pg_create_logical_replication_slot('\(setup.slot)', 'pgoutput')")
        }
        proxy.retarget(pair.standbyPort)
        return (setup, bridge)
    }

    @Test func aSlotOnTheNewPrimaryDeliversEveryNewTransaction() async throws {
        let (setup, bridge) = try await failOver("failover_slot", createSlot: true) { setup in
            try BridgeProcess(arguments: ["run", "--config", setup.config()], directory: setup.directory)
        }
        defer {
            bridge.kill(SIGKILL)
            setup.proxy.stop()
            setup.pair.destroy()
        }
        let promoted = try PGConnection(url: setup.pair.standbyURL, mode: .normal)
        for id in 101...150 {  // one transaction each, committed below pgbridge's old positions
            try promoted.execute("INSERT INTO t VALUES (\(id), 'c')")
        }
        try await waitFor("rows 101–150 from the new primary", timeout: .seconds(90)) {
            setup.ids().isSuperset(of: 101...150)
        }
        #expect(
            bridge.stderr.contains(": a failover or restore changed the server's history"),
            "\(bridge.stderr.suffix(2000))")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }

    @Test func aMissingSlotStopsThePipeOrIsResnapshotted() async throws {
        let (setup, bridge) = try await failOver("failover_noslot", createSlot: false) { setup in
            try BridgeProcess(arguments: ["run", "--config", setup.config()], directory: setup.directory)
        }
        defer {
            bridge.kill(SIGKILL)
            setup.proxy.stop()
            setup.pair.destroy()
        }
        // The running pipe stops instead of creating the slot again at the current position.
        #expect(try await bridge.waitForExit(timeout: .seconds(90)) == 3)
        let message = "replication slot \(setup.slot) is gone although this pipe read from it"
        #expect(bridge.stderr.contains(message), "\(bridge.stderr.suffix(2000))")
        // A restart does not create it silently either.
        let again = try await BridgeProcess.run(["run", "--config", setup.config()], directory: setup.directory)
        #expect(again.status == 3 && again.stderr.contains(message), "\(again.stderr.suffix(2000))")
        #expect(again.stderr.contains("on_slot_lost: resnapshot"))

        // With on_slot_lost: resnapshot every row of the table arrives, then new changes stream.
        let promoted = try PGConnection(url: setup.pair.standbyURL, mode: .normal)
        try promoted.execute("INSERT INTO t SELECT g, 'd' FROM generate_series(201, 220) g")
        let resnapshot = try BridgeProcess(
            arguments: ["run", "--config", setup.config(extraSource: "on_slot_lost: resnapshot")],
            directory: setup.directory)
        defer { resnapshot.kill(SIGKILL) }
        let result = try promoted.execute("SELECT id FROM t")
        let table = Set((0..<result.rowCount).compactMap { result.string($0, 0).flatMap { Int($0) } })
        try await waitFor("every row of the table", timeout: .seconds(90)) {
            EventFile.read(setup.output).filter { $0.op == "read" }.compactMap { $0.after?["id"] as? Int }.count
                >= table.count
        }
        let read = Set(EventFile.read(setup.output).filter { $0.op == "read" }.compactMap { $0.after?["id"] as? Int })
        #expect(read == table && table.isSuperset(of: 1...50) && table.isSuperset(of: 201...220))
        try promoted.execute("INSERT INTO t VALUES (300, 'e')")
        try await waitFor("a change after the snapshot", timeout: .seconds(60)) { setup.ids().contains(300) }
        #expect(resnapshot.stderr.contains("creating it again and re-reading the captured tables"))
        resnapshot.kill(SIGTERM)
        #expect(try await resnapshot.waitForExit() == 0)
    }
}
