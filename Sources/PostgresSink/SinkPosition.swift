import BridgeCore

/// Where a stream of events is: for a replication stream an event id `<commit_lsn>:<ordinal>`
/// (transactions in commit order, events in their transaction's order); for a Kafka partition
/// the message's offset. Events of one stream are totally ordered by it, so "applied up to
/// here" is one value per stream.
struct SinkPosition: Comparable, Sendable, CustomStringConvertible {
    var commitLSN: LSN
    var ordinal: UInt64
    /// A message offset (kept in `ordinal`), written as a plain number.
    var isOffset = false

    init(offset: UInt64) {
        commitLSN = LSN(0)
        ordinal = offset
        isOffset = true
    }

    /// The stream and position an event id names: `kafka:<topic>:<partition>:<offset>` is the
    /// partition `kafka:<topic>:<partition>` at `offset`; a replication id is the sink's own
    /// stream (`stream` nil). nil for ids without an order (`outbox:…`, `notify:…`).
    static func parse(id: UnsafeBufferPointer<UInt8>) -> (stream: Range<Int>?, position: SinkPosition)? {
        if id.count > 6, id[0] == UInt8(ascii: "k"), id[1] == UInt8(ascii: "a"), id[5] == UInt8(ascii: ":") {
            guard let colon = id.lastIndex(of: UInt8(ascii: ":")), colon > 6, colon + 1 < id.count else { return nil }
            var offset: UInt64 = 0
            for byte in id[(colon + 1)...] {
                guard byte >= 0x30, byte <= 0x39, offset < UInt64.max / 10 - 10 else { return nil }
                offset = offset * 10 + UInt64(byte - 0x30)
            }
            return (0..<colon, SinkPosition(offset: offset))
        }
        return SinkPosition(id: id).map { (nil, $0) }
    }

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

    /// A stored position: `<lsn>:<ordinal>`, or an offset.
    init?(_ text: String) {
        if let offset = UInt64(text) {
            self.init(offset: offset)
        } else {
            self.init(id: Array(text.utf8))
        }
    }

    static func < (lhs: SinkPosition, rhs: SinkPosition) -> Bool {
        (lhs.commitLSN, lhs.ordinal) < (rhs.commitLSN, rhs.ordinal)
    }

    var description: String { isOffset ? "\(ordinal)" : "\(commitLSN):\(ordinal)" }
}

/// What `pgbridge.sink_positions` holds for one sink, by stream (`source_id`: the pipe's slot,
/// or a Kafka partition).
struct AppliedStreams: Sendable {
    var streams: [String: AppliedPositions] = [:]

    subscript(stream: String) -> AppliedPositions {
        get { streams[stream] ?? AppliedPositions() }
        set { streams[stream] = newValue }
    }
}

/// What `pgbridge.sink_positions` holds for one stream of one sink: the last event applied, and
/// the events before it that the target refused (they are not skipped when they come again).
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
        SELECT source_id, position, pending FROM pgbridge.sink_positions WHERE pipe = $1 AND sink = $2
        """

    static let write = """
        INSERT INTO pgbridge.sink_positions AS p (pipe, sink, source_id, position, pending, updated_at)
        VALUES ($1, $2, $3, $4, $5::text[], now())
        ON CONFLICT (pipe, sink, source_id)
        DO UPDATE SET position = EXCLUDED.position, pending = EXCLUDED.pending, updated_at = now()
        """
}
