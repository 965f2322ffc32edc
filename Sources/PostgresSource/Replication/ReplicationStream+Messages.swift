import BridgeCore

extension ReplicationStream {
    /// One CopyData message from the server: XLogData (`w`) or keepalive (`k`).
    func handle(_ message: UnsafeRawBufferPointer) throws {
        guard let kind = message.first else { return }
        var reader = ByteReader(message, position: 1)
        switch kind {
        case UInt8(ascii: "w"):
            let dataStart = try reader.uint64("XLogData start")
            _ = try reader.uint64("XLogData end")
            _ = try reader.int64("XLogData time")
            try handlePgOutput(UnsafeRawBufferPointer(rebasing: message[25...]), lsn: dataStart)
        case UInt8(ascii: "k"):
            let walEnd = try reader.uint64("keepalive WAL end")
            _ = try reader.int64("keepalive time")
            let replyRequested = try reader.uint8("reply flag")
            if walEnd > serverWalEnd.value { serverWalEnd = LSN(walEnd) }
            if replyRequested == 1 { try sendStatus(force: true) }
        default:
            break  // unknown message types are ignored, as the protocol asks
        }
    }

    /// Whether a pgoutput message of this type carries a transaction id inside a stream.
    private static func carriesStreamXid(_ type: UInt8) -> Bool {
        switch type {
        case UInt8(ascii: "R"), UInt8(ascii: "Y"), UInt8(ascii: "I"), UInt8(ascii: "U"), UInt8(ascii: "D"),
            UInt8(ascii: "T"), UInt8(ascii: "M"):
            return true
        default:
            return false
        }
    }

    func handlePgOutput(_ payload: UnsafeRawBufferPointer, lsn: UInt64) throws {
        guard let type = payload.first else { throw PgOutputError.empty }
        // Inside a stream segment, changes are spilled until Stream Commit / Abort.
        if let xid = streamXid, Self.carriesStreamXid(type) {
            var reader = ByteReader(payload, position: 1)
            let messageXid = try reader.uint32("xid")
            try spill.append(xid: xid, messageXid: messageXid, lsn: lsn, message: payload)
            return
        }
        let message = try decoder.decode(payload)
        switch message {
        case .begin(let finalLSN, let commitTime, let xid):
            beginTransaction(commitLSN: finalLSN, xid: xid, commitTime: commitTime)
        case .commit(_, _, let endLSN, _):
            endTransaction(endLSN: endLSN)
        case .streamStart(let xid, _):
            streamXid = xid
        case .streamStop:
            streamXid = nil
        case .streamAbort(let xid, let subtransaction, _, _):
            try spill.abort(xid: xid, subtransaction: subtransaction)
        case .streamCommit(let xid, _, let commitLSN, let endLSN, let commitTime):
            beginTransaction(commitLSN: commitLSN, xid: xid, commitTime: commitTime)
            if skippingTransaction {
                try spill.abort(xid: xid, subtransaction: xid)
            } else {
                try spill.replay(xid: xid) { changeLSN, spilled in
                    try emit(decoder.decodeStreamed(spilled), payload: spilled, lsn: changeLSN)
                }
            }
            endTransaction(endLSN: endLSN)
        case .message(_, false, let messageLSN, _, _) where transaction == nil:
            // Non-transactional message: its own one-event unit, not a checkpoint.
            guard source.config.messages else { return }
            transaction = TransactionContext(commitLSN: messageLSN, xid: 0, commitTime: 0, capture: .replication)
            ordinal = 0
            try emit(message, payload: payload, lsn: messageLSN.value)
            transaction = nil
        case .beginPrepare, .prepare, .commitPrepared, .rollbackPrepared, .streamPrepare:
            throw PostgresError(
                .protocolViolation, "received a two-phase message although pgbridge does not enable two_phase; please report this",
                retriable: false)
        default:
            try emit(message, payload: payload, lsn: lsn)
        }
    }

    private func beginTransaction(commitLSN: LSN, xid: UInt32, commitTime: Int64) {
        transaction = TransactionContext(commitLSN: commitLSN, xid: xid, commitTime: commitTime, capture: .replication)
        ordinal = 0
        // Already delivered before a restart (the slot may resend after a crash): skip it.
        skippingTransaction = commitLSN < max(skipThrough, lastEmittedCheckpoint)
        transactionMark = (batch.bytes.count, batch.eventCount)
    }

    private func endTransaction(endLSN: LSN) {
        transaction = nil
        transactionMark = nil
        skippingTransaction = false
        if endLSN > lastEmittedCheckpoint { lastEmittedCheckpoint = endLSN }
        batch.checkpoint = lastEmittedCheckpoint
        if batch.bytes.count >= source.options.maxBatchBytes { pushBlocking() }
    }

    /// Encodes the row events of a change message into the current batch.
    private func emit(_ message: PgOutputMessage, payload: UnsafeRawBufferPointer, lsn: UInt64) throws {
        guard let transaction, !skippingTransaction else { return }
        let changeLSN = lsn == 0 ? transaction.commitLSN : LSN(lsn)
        switch message {
        case .insert(_, let relation):
            let change = RowChange(
                op: .insert, relation: relation, lsn: changeLSN, ordinal: ordinal,
                new: TupleView(values: decoder.newTuple, buffer: payload))
            encoder.encode(change, in: transaction, into: &batch.bytes)
        case .update(_, let relation, let old):
            let change = RowChange(
                op: .update, relation: relation, lsn: changeLSN, ordinal: ordinal,
                old: old == .none ? nil : TupleView(values: decoder.oldTuple, buffer: payload), oldIsKeyOnly: old == .key,
                new: TupleView(values: decoder.newTuple, buffer: payload))
            encoder.encode(change, in: transaction, into: &batch.bytes)
        case .delete(_, let relation, let old):
            let change = RowChange(
                op: .delete, relation: relation, lsn: changeLSN, ordinal: ordinal,
                old: TupleView(values: decoder.oldTuple, buffer: payload), oldIsKeyOnly: old == .key)
            encoder.encode(change, in: transaction, into: &batch.bytes)
        case .truncate(_, let relations, let cascade, let restartIdentity):
            for relation in relations {
                encoder.encodeTruncate(
                    relation: relation, cascade: cascade, restartIdentity: restartIdentity, lsn: changeLSN,
                    ordinal: ordinal, in: transaction, into: &batch.bytes)
                batch.endEvent()
                ordinal += 1
            }
            return
        case .message(_, let transactional, let messageLSN, let prefix, let content):
            guard source.config.messages else { return }
            encoder.encodeMessage(
                prefix: prefix, content: UnsafeRawBufferPointer(rebasing: payload[content]), transactional: transactional,
                lsn: messageLSN, ordinal: ordinal, in: transaction, into: &batch.bytes)
        default:
            return  // relation, type, origin: metadata only
        }
        batch.endEvent()
        ordinal += 1
        if batch.bytes.count >= source.options.maxBatchBytes * 4 {
            // A huge transaction: hand out what we have (its events are not a checkpoint yet).
            pushBlocking()
        }
    }
}
