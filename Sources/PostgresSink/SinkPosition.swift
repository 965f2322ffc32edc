import BridgeCore

/// Where a replication stream is: an event id `<commit_lsn>:<ordinal>`. Events of one stream
/// are totally ordered by it (transactions in commit order, events in their transaction's order),
/// so "applied up to here" is one value.
struct SinkPosition: Comparable, Sendable, CustomStringConvertible {
    var commitLSN: LSN
    var ordinal: UInt64

    /// Parses an event id; nil for ids of other sources (`outbox:…`, `notify:…`), which carry
    /// no order: their events are applied at least once.
    init?(id: some BidirectionalCollection<UInt8>) {
        // `HI/LO:ORDINAL` in hex, hex and decimal, read from the bytes (one per event: no String).
        var high: UInt64 = 0
        var low: UInt64 = 0
        var ordinal: UInt64 = 0
        var part = 0
        var digits = 0
        for byte in id {
            switch (part, byte) {
            case (0, UInt8(ascii: "/")), (1, UInt8(ascii: ":")):
                guard digits > 0 else { return nil }
                part += 1
                digits = 0
                continue
            case (0...1, _):
                let value: UInt64
                switch byte {
                case 0x30...0x39: value = UInt64(byte - 0x30)
                case 0x41...0x46: value = UInt64(byte - 0x37)
                case 0x61...0x66: value = UInt64(byte - 0x57)
                default: return nil
                }
                guard digits < 8 else { return nil }
                if part == 0 { high = high << 4 | value } else { low = low << 4 | value }
            case (2, 0x30...0x39):
                let (times, overflow1) = ordinal.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - 0x30))
                guard !overflow1, !overflow2 else { return nil }
                ordinal = sum
            default:
                return nil
            }
            digits += 1
        }
        guard part == 2, digits > 0 else { return nil }
        self.commitLSN = LSN(high << 32 | low)
        self.ordinal = ordinal
    }

    init?(_ text: String) { self.init(id: Array(text.utf8)) }

    static func < (lhs: SinkPosition, rhs: SinkPosition) -> Bool {
        (lhs.commitLSN, lhs.ordinal) < (rhs.commitLSN, rhs.ordinal)
    }

    var description: String { "\(commitLSN):\(ordinal)" }
}

/// What `pgbridge.sink_positions` holds for one sink: the last event applied, and the events
/// after it that the target refused (they are not skipped when they come again).
struct AppliedPositions: Sendable {
    var position: SinkPosition?
    /// Event ids refused at or before `position`, newest last; at most `pendingLimit`.
    var pending: [String] = []

    static let pendingLimit = 10_000

    /// Whether the event was applied in an earlier delivery (or by a process before a crash).
    func alreadyApplied(_ position: SinkPosition, id: some Collection<UInt8>) -> Bool {
        guard let applied = self.position, position <= applied else { return false }
        guard !pending.isEmpty else { return true }
        let text = String(decoding: id, as: UTF8.self)
        return !pending.contains(text)
    }
}

enum SinkPositionsTable {
    static let create = """
        CREATE TABLE IF NOT EXISTS pgbridge.sink_positions (
            pipe text NOT NULL,
            sink text NOT NULL,
            source_id text NOT NULL,
            position text NOT NULL,
            pending text[] NOT NULL DEFAULT '{}',
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (pipe, sink, source_id))
        """

    static let read = """
        SELECT position, pending FROM pgbridge.sink_positions WHERE pipe = $1 AND sink = $2 AND source_id = $3
        """

    static let write = """
        INSERT INTO pgbridge.sink_positions AS p (pipe, sink, source_id, position, pending, updated_at)
        VALUES ($1, $2, $3, $4, $5::text[], now())
        ON CONFLICT (pipe, sink, source_id)
        DO UPDATE SET position = EXCLUDED.position, pending = EXCLUDED.pending, updated_at = now()
        """
}
