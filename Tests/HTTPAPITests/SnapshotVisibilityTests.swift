import Testing

@testable import HTTPAPI

/// Live queries skip the changes their snapshot saw: events carry 32-bit xids, snapshots 64-bit.
@Suite("Live query snapshot visibility")
struct SnapshotVisibilityTests {
    @Test func transactionsBeforeAndInFlightAtTheSnapshot() throws {
        let snapshot = try #require(SnapshotVisibility("100:110:103,107"))
        #expect(snapshot.saw(xid: 99))
        #expect(snapshot.saw(xid: 105))
        #expect(!snapshot.saw(xid: 103), "in flight when the snapshot was taken")
        #expect(!snapshot.saw(xid: 110))
        #expect(!snapshot.saw(xid: 5_000))
    }

    /// Near a 2^32 boundary the epoch is the one nearest the snapshot, in both directions.
    @Test func xidsAcrossAnEpochBoundary() throws {
        let high = try #require(SnapshotVisibility("8589934570:8589934576:"))  // 0x1_FFFFFFEA : 0x1_FFFFFFF0
        #expect(high.fullXid(5) == 8_589_934_597, "xid 5 is after the wrap: the next epoch")
        #expect(!high.saw(xid: 5))
        #expect(high.saw(xid: 0xFFFF_FFE0))
        let low = try #require(SnapshotVisibility("4294967300:4294967310:"))  // 0x1_00000004 : 0x1_0000000E
        #expect(low.fullXid(0xFFFF_FFF0) == 4_294_967_280, "a high xid before the wrap: the epoch before")
        #expect(low.saw(xid: 0xFFFF_FFF0))
        #expect(!low.saw(xid: 20))
    }
}
