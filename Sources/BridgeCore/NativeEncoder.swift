/// Writes events in pgbridge's native JSON format (see docs/events.md), one object per call.
///
/// No Foundation, no intermediate objects: bytes go straight into the caller's buffer.
public struct NativeEncoder: Sendable {
    /// `"db":"…",` escaped once.
    private let dbFragment: [UInt8]
    /// Text of the current transaction's commit LSN and commit time: the same for every event
    /// of a transaction, so formatted once.
    private var cachedTransaction: (commitLSN: LSN, commitTime: Int64)?
    private var commitLSNText: [UInt8] = []
    private var commitTimeText: [UInt8] = []

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
        sourceTail(lsn: change.lsn, tx: tx, into: &out)

        // key: from the new row, or from the old one for deletes.
        JSONBytes.appendRaw(",\"key\":", into: &out)
        if let keyRow = change.op == .delete ? change.old : (change.new ?? change.old), !relation.keyColumns.isEmpty {
            out.append(UInt8(ascii: "{"))
            var first = true
            for index in relation.keyColumns where index < keyRow.values.count {
                appendColumn(relation.columns[index], keyRow.values[index], keyRow, &first, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }

        JSONBytes.appendRaw(",\"before\":", into: &out)
        if let old = change.old {
            appendRow(relation, old, keyOnly: change.oldIsKeyOnly, into: &out)
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        JSONBytes.appendRaw(",\"after\":", into: &out)
        var hasUnchangedToast = false
        if let new = change.new {
            out.append(UInt8(ascii: "{"))
            var first = true
            for (index, column) in relation.columns.enumerated() where index < new.values.count {
                if case .unchangedToast = new.values[index] {
                    hasUnchangedToast = true
                    continue
                }
                appendColumn(column, new.values[index], new, &first, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        if hasUnchangedToast, let new = change.new {
            JSONBytes.appendRaw(",\"unchanged_toast\":[", into: &out)
            var first = true
            for (index, column) in relation.columns.enumerated() where index < new.values.count {
                guard case .unchangedToast = new.values[index] else { continue }
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                out.append(contentsOf: column.jsonKey.dropLast())
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// One `truncate` event for one table.
    public mutating func encodeTruncate(
        relation: RelationInfo, cascade: Bool, restartIdentity: Bool, lsn: LSN, ordinal: Int,
        in tx: TransactionContext, into out: inout [UInt8]
    ) {
        header(op: .truncate, ordinal: ordinal, lsn: lsn, tx: tx, into: &out)
        out.append(contentsOf: relation.sourceNameJSON)
        sourceTail(lsn: lsn, tx: tx, into: &out)
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
        sourceTail(lsn: lsn, tx: tx, into: &out)
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
        sourceTail(lsn: lsn, tx: tx, into: &out)
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
        if cachedTransaction?.commitLSN != tx.commitLSN || cachedTransaction?.commitTime != tx.commitTime {
            commitLSNText.removeAll(keepingCapacity: true)
            tx.commitLSN.write(into: &commitLSNText)
            commitTimeText.removeAll(keepingCapacity: true)
            PostgresTime.writeRFC3339(tx.commitTime, into: &commitTimeText)
            cachedTransaction = (tx.commitLSN, tx.commitTime)
        }
        JSONBytes.appendRaw("{\"id\":\"", into: &out)
        out.append(contentsOf: commitLSNText)
        out.append(UInt8(ascii: ":"))
        JSONBytes.appendUInt(UInt64(ordinal), into: &out)
        JSONBytes.appendRaw("\",\"op\":\"", into: &out)
        JSONBytes.appendRaw(op.name, into: &out)
        JSONBytes.appendRaw("\",\"source\":{", into: &out)
        out.append(contentsOf: dbFragment)
    }

    /// `,"lsn":…,"commit_lsn":…,"xid":…,"commit_time":…,"capture":…}`
    @inline(__always)
    private func sourceTail(lsn: LSN, tx: TransactionContext, into out: inout [UInt8]) {
        JSONBytes.appendRaw(",\"lsn\":\"", into: &out)
        lsn.write(into: &out)
        JSONBytes.appendRaw("\",\"commit_lsn\":\"", into: &out)
        out.append(contentsOf: commitLSNText)
        JSONBytes.appendRaw("\",\"xid\":", into: &out)
        JSONBytes.appendUInt(UInt64(tx.xid), into: &out)
        JSONBytes.appendRaw(",\"commit_time\":\"", into: &out)
        out.append(contentsOf: commitTimeText)
        JSONBytes.appendRaw("\",\"capture\":\"", into: &out)
        JSONBytes.appendRaw(tx.capture.name, into: &out)
        JSONBytes.appendRaw("\"}", into: &out)
    }

    private func appendRow(_ relation: RelationInfo, _ row: TupleView, keyOnly: Bool, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for (index, column) in relation.columns.enumerated() where index < row.values.count {
            // In a key-only old tuple, 'n' marks "not a key column", not SQL NULL.
            if keyOnly && !column.isIdentity { continue }
            if case .unchangedToast = row.values[index] { continue }
            appendColumn(column, row.values[index], row, &first, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    @inline(__always)
    private func appendColumn(
        _ column: RelationInfo.Column, _ value: TupleValue, _ row: TupleView, _ first: inout Bool,
        into out: inout [UInt8]
    ) {
        if case .unchangedToast = value { return }
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        out.append(contentsOf: column.jsonKey)
        switch value {
        case .null, .unchangedToast:
            JSONBytes.appendRaw("null", into: &out)
        case .text(let offset, let length):
            ValueEncoder.append(text: row.bytes(offset: offset, length: length), mapping: column.mapping, into: &out)
        case .binary(let offset, let length):
            ValueEncoder.append(binary: row.bytes(offset: offset, length: length), into: &out)
        }
    }
}
