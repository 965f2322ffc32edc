import BridgeCore

/// A COPY data stream being written (text or binary rows).
protocol CopyRows {
    var bytes: [UInt8] { get set }
}

extension CopyText: CopyRows {}
extension CopyBinary: CopyRows {}

/// The columns a table's events are staged (or appended) with, and the rows for them.
struct StageRows {
    let columns: [TargetTable.Column]
    /// The columns' names as they appear (escaped) in event JSON.
    let raw: [[UInt8]]
    let mode: PostgresSinkConfig.Mode
    /// The table's events' members recorded by the plan, and for each of the plan's columns its
    /// index in `columns` (nil: the target lacks it).
    let work: DeliveryPlan.TableWork
    let fromPlan: [Int?]

    /// Rows are sent once this many bytes are written (the target converts them meanwhile).
    static let chunkSize = 1 << 16

    init(columns: [TargetTable.Column], mode: PostgresSinkConfig.Mode, work: DeliveryPlan.TableWork) {
        self.columns = columns
        self.mode = mode
        self.work = work
        raw = columns.map { column in
            var out: [UInt8] = []
            JSONBytes.appendEscaped(column.name, into: &out)
            return out
        }
        var index: [String: Int] = [:]
        for (position, column) in columns.enumerated() where index[column.name] == nil { index[column.name] = position }
        fromPlan = work.columns.map { index[$0] }
    }

    /// Places the event's `after` members, as recorded by the plan, into `slots`; false when a
    /// member has no column.
    @inline(__always)
    func place(recorded members: Range<Int>, into slots: inout [Range<Int>?]) -> Bool {
        for member in members {
            guard let column = fromPlan[work.memberColumns[member]] else { return false }
            slots[column] = work.memberValues[member]
        }
        return true
    }

    /// The column a member named `key` (escaped contents) goes to; members are usually in
    /// column order, so the `hint`-th column is tried first.
    func index(of key: UnsafeBufferPointer<UInt8>, hint: Int) -> Int? {
        if hint < raw.count, raw[hint].equals(key) { return hint }
        return raw.firstIndex { $0.equals(key) }
    }

    /// Places the members of `object` into `slots`; false when a member has no column.
    func place(_ bytes: UnsafeBufferPointer<UInt8>, _ object: Range<Int>, into slots: inout [Range<Int>?]) -> Bool {
        var position = 0
        var complete = true
        JSONScanner(bytes).forEachMember(of: object) { key, value in
            defer { position += 1 }
            guard let index = index(of: UnsafeBufferPointer(rebasing: bytes[key]), hint: position) else {
                complete = false
                return false
            }
            slots[index] = value
            return true
        }
        return complete
    }

    /// Places an event's row into `slots` (cleared first): the `after` members the plan recorded,
    /// else the members of `row`; false when a member has no column.
    @inline(__always)
    func place(
        _ event: DeliveryPlan.Staged, _ bytes: UnsafeBufferPointer<UInt8>, row: Range<Int>?,
        into slots: inout [Range<Int>?]
    ) -> Bool {
        for i in slots.indices { slots[i] = nil }
        if let members = event.members { return place(recorded: members, into: &slots) }
        guard let row else { return true }
        return place(bytes, row, into: &slots)
    }

    /// Calls `write` for each staged event with its batch's bytes, handing the rows written so
    /// far to `send` whenever they reach `chunkSize` bytes (the rest stays in `rows`). Returns
    /// the seqs of the events `write` refused (a column the target lacks).
    @inline(__always)
    func forEachRow<Rows: CopyRows>(
        _ staged: ArraySlice<DeliveryPlan.Staged>, batches: [EventBatch], into rows: inout Rows, chunkSize: Int,
        send: ([UInt8]) throws -> Void,
        _ write: (DeliveryPlan.Staged, UnsafeBufferPointer<UInt8>, inout Rows) throws -> Bool
    ) rethrows -> [Int] {
        var refused: [Int] = []
        for event in staged {
            if rows.bytes.count >= chunkSize {
                try send(rows.bytes)
                rows.bytes.removeAll(keepingCapacity: true)
            }
            let complete = try batches[event.batch].bytes.withUnsafeBufferPointer { try write(event, $0, &rows) }
            if !complete { refused.append(event.seq) }
        }
        return refused
    }

    /// Stage rows for `staged` (apply mode): `seq, op, uset, oldkey, <columns>`, handed to `send`
    /// in chunks (the rest stays in `copy`). Returns the seqs of events that carry a column the
    /// target lacks (not staged).
    func apply(
        _ staged: ArraySlice<DeliveryPlan.Staged>, batches: [EventBatch], into copy: inout CopyText,
        columnsOnly: Bool = false, chunkSize: Int = StageRows.chunkSize, send: ([UInt8]) throws -> Void
    ) rethrows -> [Int] {
        var slots = [Range<Int>?](repeating: nil, count: columns.count)
        return try forEachRow(staged, batches: batches, into: &copy, chunkSize: chunkSize, send: send) {
            event, bytes, copy in
            guard place(event, bytes, row: event.op == .delete ? event.key : event.after, into: &slots) else {
                return false
            }
            if let oldKey = event.oldKey {
                // The row's old key goes first: a delete of it, in the same seq.
                oldKey.withUnsafeBufferPointer { old in
                    var oldSlots = [Range<Int>?](repeating: nil, count: columns.count)
                    _ = place(old, 0..<old.count, into: &oldSlots)
                    copy.number(event.seq, first: true)
                    copy.plain("d")
                    copy.number(0)
                    copy.null()
                    for (index, column) in columns.enumerated() {
                        copy.value(old, oldSlots[index], kind: column.kind)
                    }
                    copy.endRow()
                }
            }
            if columnsOnly {
                // The target's own columns (a COPY straight into the table): the first value
                // has no tab before it.
                for (index, column) in columns.enumerated() {
                    copy.value(bytes, slots[index], kind: column.kind, first: index == 0)
                }
                copy.endRow()
                return true
            }
            copy.number(event.seq, first: true)
            switch event.op {
            case .delete: copy.plain("d")
            case .insert: copy.plain("i")
            case .read: copy.plain("r")
            default: copy.plain("u")
            }
            copy.number(event.uset)
            if let oldKey = event.oldKey, event.uset > 0 { copy.bytesField(oldKey) } else { copy.null() }
            for (index, column) in columns.enumerated() { copy.value(bytes, slots[index], kind: column.kind) }
            copy.endRow()
            return true
        }
    }

    /// Rows of an `append` target: `op, id, commit_lsn, commit_time` then `before, after`
    /// (`json`) or the row's columns (`flatten`).
    func append(
        _ staged: ArraySlice<DeliveryPlan.Staged>, batches: [EventBatch], flatten: Bool, into copy: inout CopyText,
        chunkSize: Int = StageRows.chunkSize, send: ([UInt8]) throws -> Void
    ) rethrows -> [Int] {
        var slots = [Range<Int>?](repeating: nil, count: columns.count)
        return try forEachRow(staged, batches: batches, into: &copy, chunkSize: chunkSize, send: send) {
            event, bytes, copy in
            if flatten, !place(event, bytes, row: event.after ?? event.before ?? event.key, into: &slots) {
                return false
            }
            let name = event.op.name
            copy.bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            copy.field(bytes, event.id)
            copy.field(bytes, event.commitLSN)
            copy.field(bytes, event.commitTime)
            if flatten {
                for (index, column) in columns.enumerated() { copy.value(bytes, slots[index], kind: column.kind) }
            } else {
                copy.value(bytes, event.before, kind: .json)
                copy.value(bytes, event.after, kind: .json)
            }
            copy.endRow()
            return true
        }
    }

    /// All rows into `copy` (no chunks).
    func apply(
        _ staged: ArraySlice<DeliveryPlan.Staged>, batches: [EventBatch], into copy: inout CopyText,
        columnsOnly: Bool = false
    ) -> [Int] {
        apply(staged, batches: batches, into: &copy, columnsOnly: columnsOnly, chunkSize: .max, send: { _ in })
    }

    /// All rows into `copy` (no chunks).
    func append(
        _ staged: ArraySlice<DeliveryPlan.Staged>, batches: [EventBatch], flatten: Bool, into copy: inout CopyText
    ) -> [Int] {
        append(staged, batches: batches, flatten: flatten, into: &copy, chunkSize: .max, send: { _ in })
    }
}
