import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

/// Every replication slot of the server is taken: `run` exits 3 with the fix instead of
/// retrying, and starts once a slot is free. On a private cluster, whose slots the test fills.
@Suite("No replication slot left", .enabled(if: PostgresPair.isAvailable))
struct SlotLimitTests {
    @Test func aFullServerIsRefusedWithTheFix() async throws {
        let pair = try PostgresPair(name: "slotlimit")
        defer { pair.destroy() }
        let url = pair.primaryURL
        // Many slots take seconds to create: off the cooperative pool.
        try await TestEnvironment.offPool {
            let admin = try PGConnection(url: url, mode: .normal)
            try admin.execute("CREATE TABLE items (id int PRIMARY KEY)")
            // (A slot cannot be created in a transaction that wrote: a statement of its own.)
            try admin.execute(
                """
                SELECT pg_create_logical_replication_slot('filler_' || g, 'pgoutput')
                  FROM generate_series(1, current_setting('max_replication_slots')::int) g
                """)
        }
        let directory = try TestEnvironment.scratchDirectory("slotlimit")
        let config = try ConfigFile.write(
            directory: directory, url: pair.primaryURL, tables: ["public.items"], slot: "pgbridge_slotlimit",
            output: "\(directory)/events.jsonl")
        let full = try await BridgeProcess.run(["run", "--config", config], directory: directory)
        #expect(full.status == 3, "\(full.stderr.suffix(2000))")
        #expect(
            full.stderr.contains(
                "cannot create replication slot pgbridge_slotlimit: all replication slots are in use. Drop unused slots"
            ),
            "\(full.stderr.suffix(2000))")

        try PGConnection(url: url, mode: .normal).execute("SELECT pg_drop_replication_slot('filler_1')")
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        try await bridge.waitForLog("streaming changes")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }
}
