import BridgeCore

extension StageRows {
    /// How a binary COPY writes each column, or nil when some column's type has no binary form
    /// pgbridge writes (the rows then go as text).
    var binaryKinds: [CopyBinary.Kind]? {
        let kinds = columns.compactMap(\.binary)
        return kinds.count == columns.count ? kinds : nil
    }

    /// The rows of a direct COPY into the target (inserts only) in binary format, handed to
    /// `send` in chunks. Returns the seqs of events that carry a column the target lacks (not
    /// copied); throws `Unconvertible` for a value the binary form does not take.
    func binaryRows(
        _ staged: ArraySlice<DeliveryPlan.Staged>, kinds: [CopyBinary.Kind], batches: [EventBatch],
        chunkSize: Int = StageRows.chunkSize, send: ([UInt8]) throws -> Void
    ) throws -> [Int] {
        var copy = CopyBinary()
        copy.bytes.reserveCapacity(chunkSize + chunkSize / 4)
        copy.header()
        var slots = [Range<Int>?](repeating: nil, count: columns.count)
        let refused = try forEachRow(staged, batches: batches, into: &copy, chunkSize: chunkSize, send: send) {
            event, bytes, copy in
            guard place(event, bytes, row: event.after, into: &slots) else { return false }
            copy.startRow(fields: kinds.count)
            for (index, kind) in kinds.enumerated() { try copy.value(bytes, slots[index], kind: kind) }
            return true
        }
        copy.trailer()
        try send(copy.bytes)
        return refused
    }
}
