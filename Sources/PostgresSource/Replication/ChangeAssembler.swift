import BridgeCore
import PostgresClient

/// Turns pgoutput messages into batches of encoded events: transaction boundaries and
/// checkpoints, streamed transactions (spilled until they commit), and skipping of transactions
/// that were delivered before a restart. No I/O besides the spill files, so it is unit-tested
/// with captured server output.
package final class ChangeAssembler {
    var decoder = PgOutputDecoder()
    var encoder: NativeEncoder
    let spill: StreamSpill
    let messagesEnabled: Bool
    let maxBatchBytes: Int
    /// Called when the batch is full; it must hand the batch out and call `batchWasHandedOut()`.
    package var flushBatch: () throws -> Void = {}
    /// Called periodically during long replays so the connection's status updates keep going.
    var keepAlive: () -> Void = {}
    /// A `_timescaledb_catalog.chunk` or `dimension_slice` row was inserted or updated: a new
    /// chunk. Called for every transaction, also those skipped as already delivered, so that what
    /// is known about chunks never depends on where the stream resumed.
    var timescaleCatalogRowWritten: (TimescaleCatalogRow) throws -> Void = { _ in }
    /// The chunk's catalog row was deleted by the transaction committing at the given LSN:
    /// returns what to report as `chunk_dropped` (nil when its hypertable is not captured, or it
    /// is unknown, which the callee logs).
    var chunkDropped: (_ chunkID: Int64, _ commitLSN: LSN) throws -> ChunkRecord? = { _, _ in nil }

    package var batch = EventBatch()
    /// Transactions committed below this were delivered before (dedupe after restarts).
    var skipThrough: LSN
    /// End LSN of the newest transaction put into a batch (or skipped as already delivered).
    private(set) var lastEmittedCheckpoint: LSN = .zero

    private(set) var transaction: TransactionContext?
    private var skippingTransaction = false
    private var ordinal = 0
    /// Where the open transaction's events start in `batch` (to drop them after a reconnect).
    private var transactionMark: (bytes: Int, events: Int)?
    private(set) var streamXid: UInt32?
    /// Nesting depth of TimescaleDB compression/decompression markers in the open transaction:
    /// changes between a `*-start` and its `*-end` are storage reorganisation, not user changes.
    private var timescaleMaintenanceDepth = 0

    static let timescaleMarkerPrefix = "::timescaledb-"

    package init(
        encoder: NativeEncoder, spill: StreamSpill, skipThrough: LSN, messagesEnabled: Bool, maxBatchBytes: Int
    ) {
        self.encoder = encoder
        self.spill = spill
        self.skipThrough = skipThrough
        self.messagesEnabled = messagesEnabled
        self.maxBatchBytes = maxBatchBytes
        batch.bytes.reserveCapacity(maxBatchBytes + 64 * 1024)
    }

    /// No open transaction, stream or spilled data, and nothing batched.
    var isIdle: Bool {
        transaction == nil && streamXid == nil && spill.openTransactionCount == 0 && batch.isEmpty
    }

    /// Whether the current batch may be handed out now (not in the middle of a transaction
    /// with no complete event yet).
    var hasDeliverableBatch: Bool {
        !batch.isEmpty && (transaction == nil || batch.eventCount > 0)
    }

    package func batchWasHandedOut() {
        batch.bytes.removeAll(keepingCapacity: true)
        batch.eventEnds.removeAll(keepingCapacity: true)
        batch.checkpoint = nil
        if transactionMark != nil { transactionMark = (0, 0) }
    }

    /// The server's history changed (a promoted standby, a restored backup): positions seen
    /// before mean nothing there, so nothing is skipped as delivered below `lsn` any more.
    func resetPositions(to lsn: LSN) {
        skipThrough = lsn
        lastEmittedCheckpoint = lsn
        batch.checkpoint = nil
    }

    /// After a lost connection: forget the open transaction (the server sends it again) and
    /// drop its events from the batch when they have not been handed out yet.
    func reset() {
        decoder.resetStream()
        spill.discardAll()
        dropOpenTransaction()
        streamXid = nil
    }

    /// Drops the open, incomplete transaction's events from the current batch.
    func dropOpenTransaction() {
        if transaction != nil, let mark = transactionMark,
            mark.bytes <= batch.bytes.count, mark.events <= batch.eventEnds.count
        {
            batch.bytes.removeSubrange(mark.bytes...)
            batch.eventEnds.removeSubrange(mark.events...)
        }
        transaction = nil
        transactionMark = nil
        skippingTransaction = false
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

    /// One pgoutput message; `lsn` is the WAL position from the XLogData header (0 if unknown)
    /// and `serverTime` its send time (PostgreSQL microseconds), used for messages outside a
    /// transaction.
    package func handle(_ payload: UnsafeRawBufferPointer, lsn: UInt64, serverTime: Int64 = 0) throws {
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
            try endTransaction(endLSN: endLSN)
        case .streamStart(let xid, _):
            streamXid = xid
        case .streamStop:
            streamXid = nil
        case .streamAbort(let xid, let subtransaction, _, _):
            try spill.abort(xid: xid, subtransaction: subtransaction)
        case .streamCommit(let xid, _, let commitLSN, let endLSN, let commitTime):
            beginTransaction(commitLSN: commitLSN, xid: xid, commitTime: commitTime)
            var replayed = 0
            try spill.replay(xid: xid) { changeLSN, spilled in
                // Decode even when skipping: spilled Relation/Type messages must reach the cache,
                // the server will not send them again (emit skips what was delivered).
                let message = try decoder.decodeStreamed(spilled)
                try emit(message, payload: spilled, lsn: changeLSN)
                replayed += 1
                if replayed & 4095 == 0 { keepAlive() }
            }
            try endTransaction(endLSN: endLSN)
        case .message(_, _, _, SlotMonitor.heartbeatPrefix, _) where transaction == nil:
            return  // pgbridge's own heartbeat: it only moves the WAL position
        case .message(_, false, let messageLSN, _, _) where transaction == nil:
            // Non-transactional message: a one-event unit of its own, not a checkpoint.
            guard messagesEnabled else { return }
            transaction = TransactionContext(
                commitLSN: messageLSN, xid: 0, commitTime: serverTime, capture: .replication)
            ordinal = 0
            try emit(message, payload: payload, lsn: messageLSN.value)
            transaction = nil
        case .beginPrepare, .prepare, .commitPrepared, .rollbackPrepared, .streamPrepare:
            throw PostgresError(
                .protocolViolation,
                "received a two-phase message although pgbridge does not enable two_phase; please report this",
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
        timescaleMaintenanceDepth = 0
    }

    private func endTransaction(endLSN: LSN) throws {
        transaction = nil
        timescaleMaintenanceDepth = 0
        transactionMark = nil
        skippingTransaction = false
        if endLSN > lastEmittedCheckpoint { lastEmittedCheckpoint = endLSN }
        batch.checkpoint = lastEmittedCheckpoint
        if batch.bytes.count >= maxBatchBytes { try flushBatch() }
    }

    /// Retention: the key-only delete of a `_timescaledb_catalog.chunk` row becomes one
    /// `chunk_dropped` event when the chunk belongs to a captured hypertable.
    private func chunkCatalogRowDeleted(
        catalog: RelationInfo, payload: UnsafeRawBufferPointer, lsn: LSN, transaction: TransactionContext
    ) throws {
        guard catalog.timescaleCatalog == .chunk,
            let idColumn = catalog.columns.firstIndex(where: { $0.name == "id" })
        else { return }
        let old = TupleView(values: decoder.oldTuple, buffer: payload)
        guard let id = old.string(at: idColumn).flatMap({ Int64($0) }) else { return }
        guard let record = try chunkDropped(id, transaction.commitLSN), !skippingTransaction else { return }
        let relation = RelationInfo(
            oid: catalog.oid, schema: record.hypertable.schema, table: record.hypertable.name,
            replicaIdentity: .default, columns: [], chunk: record.chunk.display)
        encoder.encodeChunkDropped(
            relation: relation, chunkID: id, rangeStart: record.chunk.rangeStart, rangeEnd: record.chunk.rangeEnd,
            lsn: lsn,
            ordinal: ordinal, in: transaction, into: &batch.bytes)
        batch.endEvent()
        ordinal += 1
    }

    /// TimescaleDB catalog rows: learned (inserts and updates) or retention (deletes); never
    /// reported as row changes. Returns false for other messages.
    private func handleTimescaleCatalog(
        _ message: PgOutputMessage, payload: UnsafeRawBufferPointer, lsn: LSN, transaction: TransactionContext
    ) throws -> Bool {
        switch message {
        case .insert(_, let relation), .update(_, let relation, _):
            guard let table = relation.timescaleCatalog else { return false }
            let row = TupleView(values: decoder.newTuple, buffer: payload)
            if let parsed = TimescaleCatalogRow(table: table, columns: relation.columns.map(\.name), row: row) {
                try timescaleCatalogRowWritten(parsed)
            }
            return true
        case .delete(_, let relation, _):
            guard relation.timescaleCatalog != nil else { return false }
            try chunkCatalogRowDeleted(catalog: relation, payload: payload, lsn: lsn, transaction: transaction)
            return true
        default:
            return false
        }
    }

    /// Encodes the events of a change message into the current batch.
    private func emit(_ message: PgOutputMessage, payload: UnsafeRawBufferPointer, lsn: UInt64) throws {
        guard let transaction else { return }
        let changeLSN = lsn == 0 ? transaction.commitLSN : LSN(lsn)
        if try handleTimescaleCatalog(message, payload: payload, lsn: changeLSN, transaction: transaction) { return }
        guard !skippingTransaction else { return }
        switch message {
        case .message(_, _, _, SlotMonitor.heartbeatPrefix, _):
            return
        case .message(_, _, _, let prefix, _) where prefix.hasPrefix(Self.timescaleMarkerPrefix):
            if prefix.hasSuffix("-start") {
                timescaleMaintenanceDepth += 1
            } else if prefix.hasSuffix("-end") {
                timescaleMaintenanceDepth = max(0, timescaleMaintenanceDepth - 1)
            }
            return
        case .insert(_, let relation), .update(_, let relation, _), .delete(_, let relation, _):
            if relation.isSuppressed || timescaleMaintenanceDepth > 0 { return }
        case .truncate:
            if timescaleMaintenanceDepth > 0 { return }
        default:
            break
        }
        switch message {
        case .insert(_, let relation):
            let change = RowChange(
                op: .insert, relation: relation, lsn: changeLSN, ordinal: ordinal,
                new: TupleView(values: decoder.newTuple, buffer: payload))
            encoder.encode(change, in: transaction, into: &batch.bytes)
        case .update(_, let relation, let old):
            let change = RowChange(
                op: .update, relation: relation, lsn: changeLSN, ordinal: ordinal,
                old: old == .none ? nil : TupleView(values: decoder.oldTuple, buffer: payload),
                oldIsKeyOnly: old == .key,
                new: TupleView(values: decoder.newTuple, buffer: payload))
            encoder.encode(change, in: transaction, into: &batch.bytes)
        case .delete(_, let relation, let old):
            let change = RowChange(
                op: .delete, relation: relation, lsn: changeLSN, ordinal: ordinal,
                old: TupleView(values: decoder.oldTuple, buffer: payload), oldIsKeyOnly: old == .key)
            encoder.encode(change, in: transaction, into: &batch.bytes)
        case .truncate(_, let relations, let cascade, let restartIdentity):
            // TRUNCATE of a hypertable lists the hypertable and every chunk: report each table once.
            var reported: Set<String> = []
            for relation in relations where !relation.isSuppressed {
                guard reported.insert(relation.qualifiedName).inserted else { continue }
                encoder.encodeTruncate(
                    relation: relation, cascade: cascade, restartIdentity: restartIdentity, lsn: changeLSN,
                    ordinal: ordinal, in: transaction, into: &batch.bytes)
                batch.endEvent()
                ordinal += 1
            }
            return
        case .message(_, let transactional, let messageLSN, let prefix, let content):
            guard messagesEnabled else { return }
            encoder.encodeMessage(
                prefix: prefix, content: UnsafeRawBufferPointer(rebasing: payload[content]),
                transactional: transactional,
                lsn: messageLSN, ordinal: ordinal, in: transaction, into: &batch.bytes)
        default:
            return  // relation, type, origin: metadata only
        }
        batch.endEvent()
        ordinal += 1
        if batch.bytes.count >= maxBatchBytes * 4 {
            // A huge transaction: hand out what we have (its events are not a checkpoint yet).
            try flushBatch()
        }
    }
}
