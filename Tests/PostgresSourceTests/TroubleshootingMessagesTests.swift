import BridgeCore
import Foundation
import Testing

@testable import PostgresSource

/// Messages of docs/troubleshooting.md that need no server, produced word for word.
@Suite("Troubleshooting: capture messages")
struct TroubleshootingMessagesTests {
    func slot(plugin: String?, database: String?) -> CaptureCatalog.SlotState {
        CaptureCatalog.SlotState(
            name: "orders_slot", plugin: plugin, database: database, active: false, activePID: nil,
            confirmedFlush: nil, walStatus: nil)
    }

    @Test func aSlotOfAnotherPluginOrDatabaseIsRefused() {
        let plugin = CaptureCatalog.slotProblems(slot(plugin: "test_decoding", database: "app"), database: "app")
        #expect(
            plugin.contains { $0.hasPrefix("replication slot orders_slot uses plugin test_decoding, not pgoutput: ") })
        let database = CaptureCatalog.slotProblems(slot(plugin: "pgoutput", database: "other"), database: "app")
        #expect(
            database == ["replication slot orders_slot belongs to database other, not app: choose another slot name"])
        #expect(CaptureCatalog.slotProblems(slot(plugin: "pgoutput", database: "app"), database: "app").isEmpty)
    }

    @Test func aSpillFileThatCannotBeCreatedSaysWhereAndWhy() throws {
        let directory = NSTemporaryDirectory() + "pgbridge-spill-\(UUID().uuidString)"
        let spill = try StreamSpill(directory: directory)
        try FileManager.default.removeItem(atPath: directory)  // state_dir gone (or not writable)
        let message: [UInt8] = [1, 2, 3]
        do {
            try message.withUnsafeBytes { try spill.append(xid: 7, messageXid: nil, lsn: 0, message: $0) }
            Issue.record("the spill file was created in a missing directory")
        } catch {
            let text = "\(error)"
            #expect(
                text.contains("cannot create spill file \(directory)/7.spill: No such file or directory"), "\(text)")
            #expect(text.contains(". Check that state_dir is writable"), "\(text)")
        }
    }
}
