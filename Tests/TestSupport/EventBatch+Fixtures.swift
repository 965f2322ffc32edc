import BridgeCore

extension EventBatch {
    /// A batch of the given event JSON texts, one event each.
    public static func fixture(_ events: [String], checkpoint: LSN? = nil, sequence: UInt64 = 0) -> EventBatch {
        var batch = EventBatch(checkpoint: checkpoint, sequence: sequence)
        for event in events {
            batch.bytes.append(contentsOf: event.utf8)
            batch.endEvent()
        }
        return batch
    }

    /// Native events with ids `0/10:<id>` and `after: {"id": <id>}` (plus a `pad` column of
    /// `padding` characters when asked), of `public.<table>`.
    public static func fixture(
        ids: ClosedRange<Int>, table: String = "items", op: String = "insert", padding: Int? = nil
    ) -> EventBatch {
        fixture(
            ids.map { id in
                let pad = padding.map { #","pad":"\#(String(repeating: "x", count: $0))""# } ?? ""
                return
                    #"{"id":"0/10:\#(id)","op":"\#(op)","source":{"schema":"public","table":"\#(table)"},"after":{"id":\#(id)\#(pad)}}"#
            })
    }
}
