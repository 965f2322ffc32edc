/// Writes events in pgbridge's native JSON format (see docs/events.md), one object per call.
///
/// No Foundation, no intermediate objects: bytes go straight into the caller's buffer.
public struct NativeEncoder: Sendable {
    /// `"db":"…",` escaped once.
    private let dbFragment: [UInt8]
    /// The current transaction's parts of every event, formatted once per transaction:
    /// `{"id":"<commit_lsn>:` and `","commit_lsn":"…","xid":…,"commit_time":"…","capture":"…"}`.
    private var transactionKey: (commitLSN: LSN, commitTime: Int64, xid: UInt32, capture: CaptureKind)?
    private var idPrefix: [UInt8] = []
    private var transactionTail: [UInt8] = []
    /// `","op":"<op>","source":{"db":"…",` of the last operation (consecutive events mostly
    /// share one).
    private var operationFragment: (op: ChangeOperation?, bytes: [UInt8]) = (nil, [])

    public init(database: String) {
        var fragment: [UInt8] = []
        JSONBytes.appendRaw("\"db\":", into: &fragment)
        JSONBytes.appendString(database, into: &fragment)
        fragment.append(UInt8(ascii: ","))
        self.dbFragment = fragment
    }

    /// insert / update / delete / read.
    public mutating func encode(_ change: RowChange, in tx: TransactionContext, into out: inout [UInt8]) {
        let relation = change.relation
        header(op: change.op, ordinal: change.ordinal, lsn: change.lsn, tx: tx, into: &out)
        out.append(contentsOf: relation.sourceNameJSON)
        sourceTail(lsn: change.lsn, into: &out)
        relation.jsonKeys.withUnsafeBufferPointer { keys in
            appendRows(change, relation, keys, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `,"key":…,"before":…,"after":…` (and `,"unchanged_toast":[…]`).
    @inline(__always)
    private func appendRows(
        _ change: RowChange, _ relation: RelationInfo, _ keys: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]
    ) {
        // key: from the new row, or from the old one for deletes.
        JSONBytes.appendRaw(",\"key\":", into: &out)
        if let keyRow = change.op == .delete ? change.old : (change.new ?? change.old), !relation.keyColumns.isEmpty {
            out.append(UInt8(ascii: "{"))
            var first = true
            for index in relation.keyColumns where index < keyRow.values.count {
                appendColumn(index, relation, keys, keyRow, &first, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }

        JSONBytes.appendRaw(",\"before\":", into: &out)
        if let old = change.old {
            appendRow(relation, keys, old, keyOnly: change.oldIsKeyOnly, into: &out)
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        JSONBytes.appendRaw(",\"after\":", into: &out)
        var hasUnchangedToast = false
        if let new = change.new {
            out.append(UInt8(ascii: "{"))
            var first = true
            for index in 0..<min(relation.columns.count, new.values.count) {
                if case .unchangedToast = new.values[index] {
                    hasUnchangedToast = true
                    continue
                }
                appendColumn(index, relation, keys, new, &first, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        if hasUnchangedToast, let new = change.new {
            JSONBytes.appendRaw(",\"unchanged_toast\":[", into: &out)
            var first = true
            for index in 0..<min(relation.columns.count, new.values.count) {
                guard case .unchangedToast = new.values[index] else { continue }
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                let key = relation.jsonKey(index, in: keys)
                out.append(contentsOf: UnsafeBufferPointer(rebasing: key.dropLast()))
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    /// One `truncate` event for one table.
    public mutating func encodeTruncate(
        relation: RelationInfo, cascade: Bool, restartIdentity: Bool, lsn: LSN, ordinal: Int,
        in tx: TransactionContext, into out: inout [UInt8]
    ) {
        header(op: .truncate, ordinal: ordinal, lsn: lsn, tx: tx, into: &out)
        out.append(contentsOf: relation.sourceNameJSON)
        sourceTail(lsn: lsn, into: &out)
        JSONBytes.appendRaw(",\"key\":null,\"before\":null,\"after\":null,\"truncate\":{\"cascade\":", into: &out)
        cascade ? JSONBytes.appendRaw("true", into: &out) : JSONBytes.appendRaw("false", into: &out)
        JSONBytes.appendRaw(",\"restart_identity\":", into: &out)
        restartIdentity ? JSONBytes.appendRaw("true", into: &out) : JSONBytes.appendRaw("false", into: &out)
        JSONBytes.appendRaw("}}", into: &out)
    }

    /// One `chunk_dropped` event (TimescaleDB retention): `relation` names the hypertable and the
    /// chunk; `chunk` carries the catalog id and the time range when known.
    public mutating func encodeChunkDropped(
        relation: RelationInfo, chunkID: Int64, rangeStart: String?, rangeEnd: String?, lsn: LSN, ordinal: Int,
        in tx: TransactionContext, into out: inout [UInt8]
    ) {
        header(op: .chunkDropped, ordinal: ordinal, lsn: lsn, tx: tx, into: &out)
        out.append(contentsOf: relation.sourceNameJSON)
        sourceTail(lsn: lsn, into: &out)
        JSONBytes.appendRaw(",\"key\":null,\"before\":null,\"after\":null,\"chunk\":{\"id\":", into: &out)
        JSONBytes.appendInt(chunkID, into: &out)
        JSONBytes.appendRaw(",\"range_start\":", into: &out)
        if let rangeStart {
            JSONBytes.appendString(rangeStart, into: &out)
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        JSONBytes.appendRaw(",\"range_end\":", into: &out)
        if let rangeEnd {
            JSONBytes.appendString(rangeEnd, into: &out)
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        JSONBytes.appendRaw("}}", into: &out)
    }

    /// A logical decoding message (`pg_logical_emit_message`): `op: message`,
    /// `after: {"prefix": …, "content": …, "transactional": …}`.
    public mutating func encodeMessage(
        prefix: String, content: UnsafeRawBufferPointer, transactional: Bool, lsn: LSN, ordinal: Int,
        in tx: TransactionContext, into out: inout [UInt8]
    ) {
        header(op: .message, ordinal: ordinal, lsn: lsn, tx: tx, into: &out)
        out.removeLast()  // the comma before the table names: messages have none
        sourceTail(lsn: lsn, into: &out)
        JSONBytes.appendRaw(",\"key\":null,\"before\":null,\"after\":{\"prefix\":", into: &out)
        JSONBytes.appendString(prefix, into: &out)
        JSONBytes.appendRaw(",\"content\":", into: &out)
        JSONBytes.appendString(content, into: &out)
        JSONBytes.appendRaw(",\"transactional\":", into: &out)
        transactional ? JSONBytes.appendRaw("true", into: &out) : JSONBytes.appendRaw("false", into: &out)
        JSONBytes.appendRaw("}}", into: &out)
    }

    // MARK: - Pieces

    /// `{"id":"…","op":"…","source":{"db":"…",`
    @inline(__always)
    private mutating func header(
        op: ChangeOperation, ordinal: Int, lsn: LSN, tx: TransactionContext, into out: inout [UInt8]
    ) {
        if transactionKey?.commitLSN != tx.commitLSN || transactionKey?.commitTime != tx.commitTime
            || transactionKey?.xid != tx.xid || transactionKey?.capture != tx.capture
        {
            prepare(tx)
        }
        if operationFragment.op != op { prepare(op) }
        out.append(contentsOf: idPrefix)
        JSONBytes.appendUInt(UInt64(ordinal), into: &out)
        out.append(contentsOf: operationFragment.bytes)
    }

    /// The transaction's fragments: `{"id":"<commit_lsn>:` and the end of the source block.
    private mutating func prepare(_ tx: TransactionContext) {
        idPrefix.removeAll(keepingCapacity: true)
        JSONBytes.appendRaw("{\"id\":\"", into: &idPrefix)
        tx.commitLSN.write(into: &idPrefix)
        idPrefix.append(UInt8(ascii: ":"))
        transactionTail.removeAll(keepingCapacity: true)
        JSONBytes.appendRaw("\",\"commit_lsn\":\"", into: &transactionTail)
        tx.commitLSN.write(into: &transactionTail)
        JSONBytes.appendRaw("\",\"xid\":", into: &transactionTail)
        JSONBytes.appendUInt(UInt64(tx.xid), into: &transactionTail)
        JSONBytes.appendRaw(",\"commit_time\":\"", into: &transactionTail)
        PostgresTime.writeRFC3339(tx.commitTime, into: &transactionTail)
        JSONBytes.appendRaw("\",\"capture\":\"", into: &transactionTail)
        JSONBytes.appendRaw(tx.capture.name, into: &transactionTail)
        JSONBytes.appendRaw("\"}", into: &transactionTail)
        transactionKey = (tx.commitLSN, tx.commitTime, tx.xid, tx.capture)
    }

    /// `","op":"<op>","source":{"db":"…",` for the operation.
    private mutating func prepare(_ op: ChangeOperation) {
        var bytes: [UInt8] = []
        JSONBytes.appendRaw("\",\"op\":\"", into: &bytes)
        JSONBytes.appendRaw(op.name, into: &bytes)
        JSONBytes.appendRaw("\",\"source\":{", into: &bytes)
        bytes.append(contentsOf: dbFragment)
        operationFragment = (op, bytes)
    }

    /// `,"lsn":…,"commit_lsn":…,"xid":…,"commit_time":…,"capture":…}`
    @inline(__always)
    private func sourceTail(lsn: LSN, into out: inout [UInt8]) {
        JSONBytes.appendRaw(",\"lsn\":\"", into: &out)
        lsn.write(into: &out)
        out.append(contentsOf: transactionTail)
    }

    private func appendRow(
        _ relation: RelationInfo, _ keys: UnsafeBufferPointer<UInt8>, _ row: TupleView, keyOnly: Bool,
        into out: inout [UInt8]
    ) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for index in 0..<min(relation.columns.count, row.values.count) {
            // In a key-only old tuple, 'n' marks "not a key column", not SQL NULL.
            if keyOnly && !relation.columns[index].isIdentity { continue }
            appendColumn(index, relation, keys, row, &first, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `"name":value` of column `index` (nothing for an unchanged TOAST value).
    @inline(__always)
    private func appendColumn(
        _ index: Int, _ relation: RelationInfo, _ keys: UnsafeBufferPointer<UInt8>, _ row: TupleView,
        _ first: inout Bool, into out: inout [UInt8]
    ) {
        let value = row.values[index]
        if case .unchangedToast = value { return }
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        out.append(contentsOf: relation.jsonKey(index, in: keys))
        switch value {
        case .null, .unchangedToast:
            JSONBytes.appendRaw("null", into: &out)
        case .text(let offset, let length):
            ValueEncoder.append(
                text: row.bytes(offset: offset, length: length), mapping: relation.mappings[index], into: &out)
        case .binary(let offset, let length):
            ValueEncoder.append(binary: row.bytes(offset: offset, length: length), into: &out)
        }
    }
}
