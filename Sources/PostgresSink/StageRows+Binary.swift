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
        var refused: [Int] = []
        for event in staged {
            if copy.bytes.count >= chunkSize {
                try send(copy.bytes)
                copy.bytes.removeAll(keepingCapacity: true)
            }
            let complete = try batches[event.batch].bytes.withUnsafeBufferPointer { bytes -> Bool in
                for i in slots.indices { slots[i] = nil }
                if let members = event.members {
                    if !place(recorded: members, into: &slots) { return false }
                } else if let row = event.after, !place(bytes, row, into: &slots) {
                    return false
                }
                copy.startRow(fields: kinds.count)
                for (index, kind) in kinds.enumerated() { try copy.value(bytes, slots[index], kind: kind) }
                return true
            }
            if !complete { refused.append(event.seq) }
        }
        copy.trailer()
        try send(copy.bytes)
        return refused
    }
}
