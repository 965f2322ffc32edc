import BridgeCore
import Foundation
import Glibc
import Logging
import PostgresClient

// One piece (over 400 lines): the replication loop and its connection state machine share
// the thread-confined state below; the catalog, snapshot and history parts are extensions.

/// The replication thread: owns the replication connection, decodes pgoutput, encodes events
/// into batches and answers the server. Every field is confined to this one thread; the
/// pipeline talks to it only through `ReplicationSource.shared` and the source's `SourceThread`.
// @unchecked Sendable: handed to its thread once at start; from then on only that thread uses it.
final class ReplicationStream: @unchecked Sendable {
    let source: ReplicationSource
    let prepared: ReplicationSource.Prepared
    let logger: Logger
    let queue: BatchQueue
    let checkpointStore: CheckpointStore
    let assembler: ChangeAssembler

    var connection: PGConnection?
    var catalogConnection: PGConnection?
    var timescaleState: CaptureCatalog.TimescaleState?
    /// The pipe's resolved tables; changes of other relations (and of chunks of other
    /// hypertables) are not reported.
    lazy var capturedOIDs = Set(prepared.resolvedTables.map(\.oid))
    lazy var capturedNames = Set(prepared.resolvedTables.map(\.display))
    /// TimescaleDB chunks and hypertables (see `ChunkMap`), kept in the state directory.
    var chunkMap: ChunkMap
    let chunkStore: ChunkMapStore
    /// Dimensions by catalog id: their hypertable and whether they are time columns.
    var dimensions: [Int64: (hypertableID: Int64, isTime: Bool)] = [:]
    /// Reporting metadata of captured hypertables' chunks, by hypertable id (per connection).
    var hypertableMetadata: [Int64: PgOutputDecoder.RelationMetadata] = [:]
    /// Relations that could not be resolved and were logged (once each).
    var unresolvedRelations: Set<UInt32> = []

    // Batching
    var nextSequence: UInt64 = 1
    var lastPushedSequence: UInt64 = 0

    // Positions
    /// Newest WAL position the server reported in a keepalive.
    var serverWalEnd: LSN = .zero
    var lastFlushSent: LSN = .zero
    var lastStatusSent = ContinuousClock.now - .seconds(3600)
    var statusDue = false
    /// When the server last sent anything (or pgbridge last stopped reading for backpressure):
    /// a connection silent for `receive_timeout` is treated as lost.
    var lastServerTraffic = ContinuousClock.now
    /// When the stream stopped reading because its batch is full and the queue has no room.
    var readPausedSince: ContinuousClock.Instant?
    var replyRequested = false
    /// The walsender serving this pipe's current (or last) replication connection.
    var walsenderPID: Int?
    /// The server's timeline as last seen (IDENTIFY_SYSTEM on every connect).
    lazy var currentTimeline = prepared.timeline

    init(source: ReplicationSource, prepared: ReplicationSource.Prepared) throws {
        self.source = source
        self.prepared = prepared
        self.logger = source.logger
        self.queue = source.thread.queue
        self.checkpointStore = try CheckpointStore(directory: source.stateDirectory, pipe: source.pipeName)
        let spill = try StreamSpill(
            directory: (source.stateDirectory as NSString).appendingPathComponent("spill/\(source.pipeName)"))
        var skip = LSN.zero
        if let record = checkpointStore.load() {
            // The record only describes this slot's history on this server lineage. A new slot
            // (e.g. after a failover, where slots do not exist), a new timeline (a promoted
            // standby) or a record ahead of the server's WAL (a restored backup) make it stale:
            // trusting it would skip real transactions.
            let reason: String? =
                if record.systemID != prepared.systemID || record.slot != source.config.slot {
                    "it belongs to another database or slot"
                } else if prepared.slotCreated {
                    "the slot was just created"
                } else if !record.timeline.isEmpty && record.timeline != prepared.timeline {
                    "the server is on timeline \(prepared.timeline) now (was \(record.timeline))"
                } else if record.lsn > prepared.serverWAL {
                    "it is ahead of the server's WAL position \(prepared.serverWAL)"
                } else {
                    nil
                }
            if let reason {
                logger.warning(
                    "ignoring the pipe's checkpoint \(record.lsn): \(reason)",
                    metadata: ["file": "\(checkpointStore.path)"])
            } else {
                skip = record.lsn
            }
        }
        self.chunkStore = ChunkMapStore(directory: source.stateDirectory, pipe: source.pipeName)
        self.chunkMap = ChunkMap(
            capturedHypertableNames: Set(
                prepared.resolvedTables.filter { prepared.hypertables.contains($0.oid) }.map(\.display)))
        try chunkStore.load(into: &chunkMap)
        self.assembler = ChangeAssembler(
            encoder: NativeEncoder(database: prepared.database), spill: spill, skipThrough: skip,
            messagesEnabled: source.config.messages, maxBatchBytes: source.options.maxBatchBytes)
        let initial = max(skip, prepared.slotConfirmed ?? .zero)
        if initial > .zero {
            source.shared.withLock { $0.ackedLSN = initial }
        }
        assembler.decoder.relationLookup = { [unowned self] oid, schema, name in
            try self.relationMetadata(oid: oid, schema: schema, name: name)
        }
        assembler.flushBatch = { [unowned self] in try self.pushBlocking(whileStreaming: true) }
        assembler.keepAlive = { [unowned self] in try? self.sendStatusIfDue() }
        assembler.timescaleCatalogRowWritten = { [unowned self] row in try learn(row) }
        assembler.chunkDropped = { [unowned self] id, commitLSN in try chunkDropped(id: id, commitLSN: commitLSN) }
    }

    // MARK: - Thread body

    func run() {
        var attempt = 0
        var busySince: ContinuousClock.Instant?
        var snapshotPending = source.config.snapshot == .initial || prepared.resnapshot
        var forceSnapshot = prepared.resnapshot
        while !stopRequested {
            do {
                var exporting: PGConnection?
                if snapshotPending {
                    exporting = try runSnapshotIfNeeded(force: forceSnapshot)
                    snapshotPending = false
                    forceSnapshot = false
                    if stopRequested { break }
                }
                try connectAndStart(reusing: exporting)
                busySince = nil
                // Back off again only when this connection got nowhere: a failure that repeats
                // right after every connect (a full disk, a bad message) must not become a storm.
                let progressFrom = assembler.lastEmittedCheckpoint
                defer { if assembler.lastEmittedCheckpoint > progressFrom { attempt = 0 } }
                try streamUntilStopped()
            } catch let error as PostgresError
                where error.code == .slotMissing && source.config.onSlotLost == .resnapshot
            {
                // The slot vanished under a running pipe (a failover to a server without it):
                // create it again with a snapshot and re-read the tables.
                logger.warning(
                    Logger.Message(
                        stringLiteral:
                            "replication slot \(source.config.slot) is gone (confirmed up to \(lastFlushSent) before): "
                            + "creating it again and re-reading the captured tables (on_slot_lost: resnapshot)"))
                resetAfterDisconnect()
                resetPositions(to: .zero, timeline: currentTimeline)
                SnapshotProgress.remove(directory: source.stateDirectory, pipe: source.pipeName)
                snapshotPending = true
                forceSnapshot = true
            } catch let error as PostgresError where error.code == .readPaused {
                logger.warning(Logger.Message(stringLiteral: error.message))
                resetAfterDisconnect()
                if let lost = waitForQueueRoom() {
                    fail(lost)
                    return
                }
            } catch let error as PostgresError where error.code == .slotBusy {
                let started = busySince ?? .now
                busySince = started
                if ContinuousClock.now - started > source.config.slotBusyTimeout {
                    fail(error)
                    return
                }
                logger.warning("\(error.message); retrying")
                resetAfterDisconnect()
                source.thread.pause(.seconds(1))
            } catch let error as PostgresError where error.isRetriable {
                resetAfterDisconnect()
                attempt += 1
                let delay = Reconnect.delay(attempt: attempt, maximum: source.options.maxReconnectDelay)
                logger.warning("replication interrupted: \(error.message); reconnecting in \(delay)")
                source.thread.pause(delay)
            } catch {
                fail(error)
                return
            }
        }
        shutDown()
    }

    var stopRequested: Bool { source.thread.stopRequested }

    private func fail(_ error: any Error) {
        logger.error("replication stopped: \(error)")
        connection = nil
        catalogConnection = nil
        queue.finish(error: error)
    }

    /// Stop: hand out what is batched, wait until the pipeline has acknowledged it, send the
    /// final position, close.
    private func shutDown() {
        assembler.dropOpenTransaction()  // an incomplete transaction is resent on the next start
        if !assembler.batch.isEmpty, connection != nil {
            try? pushBlocking(whileStreaming: false)
        }
        queue.finish()
        let deadline = ContinuousClock.now + .seconds(30)
        while connection != nil && ContinuousClock.now < deadline {
            let wait = source.thread.waitForAcknowledgement(through: lastPushedSequence, timeout: .milliseconds(100))
            if wait != .timedOut { break }
            try? sendStatusIfDue()
        }
        if let connection {
            try? sendStatus(force: true)
            connection.endCopy()
        }
        connection = nil
        catalogConnection = nil
        logger.info("replication stopped", metadata: ["confirmed_lsn": "\(lastFlushSent)"])
    }

    private func resetAfterDisconnect() {
        connection = nil
        // The catalog connection likely shares the replication connection's fate (a failover, a
        // silent network path): open a new one rather than wait on it.
        catalogConnection = nil
        assembler.reset()
    }

    // MARK: - Connecting

    /// Opens the replication connection (or reuses the one that created the slot) and starts streaming.
    private func connectAndStart(reusing existing: PGConnection? = nil) throws {
        let connection =
            try existing
            ?? PGConnection(url: source.postgres.url, mode: .replication, tcpUserTimeout: source.config.receiveTimeout)
        let identity = try connection.execute("IDENTIFY_SYSTEM")
        if let systemID = identity.string(0, "systemid"), systemID != prepared.systemID {
            throw PostgresError(
                .prerequisite,
                "the server at \(connection.target) is another cluster now (system id \(systemID), was \(prepared.systemID)): "
                    + "after a failover or restore, check the slot and restart pgbridge", retriable: false)
        }
        try followServerHistory(
            timeline: identity.string(0, "timeline") ?? currentTimeline,
            serverWAL: identity.string(0, "xlogpos").flatMap { LSN($0) })
        let publication = "\"" + source.config.publication.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        // messages is always requested: TimescaleDB's compression markers are logical messages.
        // `messages: false` in the config only keeps message events out of the output.
        let command = """
            START_REPLICATION SLOT \(SQL.identifier(source.config.slot)) LOGICAL 0/0 \
            (proto_version '2', publication_names \(SQL.literal(publication)), \
            messages 'true', streaming 'on')
            """
        let pid = try connection.execute("SELECT pg_backend_pid()").string(0, 0).flatMap { Int($0) }
        do {
            try connection.execute(command)
        } catch let error as PostgresError {
            throw classifyStartError(error)
        }
        walsenderPID = pid
        connection.setNonBlocking()
        self.connection = connection
        statusDue = true
        lastServerTraffic = .now
        replyRequested = false
        // Chunk catalog rows are gone by the time their deletes are decoded: know them beforehand.
        try loadTimescaleCatalog()
        logger.info(
            "streaming changes",
            metadata: [
                "slot": "\(source.config.slot)", "publication": "\(source.config.publication)",
                "resume_after": "\(assembler.skipThrough)",
            ])
    }

    /// What a failed START_REPLICATION means, by SQLSTATE and the slot's state in
    /// `pg_replication_slots`, never by the message text (which follows `lc_messages`).
    private func classifyStartError(_ error: PostgresError) -> PostgresError {
        let slotState = error.sqlState.flatMap { _ in try? catalog().slot(source.config.slot) }
        let missing = SlotAdvice.missing(
            source.config.slot, confirmed: lastFlushSent, timeline: currentTimeline, checkpoint: checkpointStore.path)
        let classified = Self.classifyStartError(error, slot: source.config.slot, state: slotState, missing: missing)
        if classified.code == .slotBusy, let previous = walsenderPID, slotState?.activePID == previous {
            // Our own walsender from before the connection went silent still holds the slot (the
            // server notices only after wal_sender_timeout): end it, the next attempt takes over.
            logger.warning(
                "the slot is still held by this pipe's previous walsender (PID \(previous)) from a connection that went silent; terminating it"
            )
            do {
                _ = try catalog().connection.execute("SELECT pg_terminate_backend($1::int)", [String(previous)])
            } catch {
                logger.warning("cannot terminate walsender PID \(previous): \(error); waiting for the server to end it")
            }
        }
        return classified
    }

    static func classifyStartError(
        _ error: PostgresError, slot: String, state: CaptureCatalog.SlotState?, missing: String = ""
    ) -> PostgresError {
        switch error.sqlState {
        case "55006":  // object_in_use
            return PostgresError(
                .slotBusy, SlotAdvice.busy(slot, pid: state?.activePID), sqlState: error.sqlState, retriable: false)
        case "42704":  // undefined_object
            return PostgresError(
                .slotMissing, missing.isEmpty ? "replication slot \(slot) does not exist any more" : missing,
                sqlState: error.sqlState, retriable: false)
        case "55000" where state?.walStatus == "lost":  // object_not_in_prerequisite_state
            return PostgresError(.slotInvalidated, SlotAdvice.lost(slot), sqlState: error.sqlState, retriable: false)
        default:
            if error.code == .connectionFailed { return error }
            return PostgresError(
                error.code, "START_REPLICATION on slot \(slot) failed: \(error.message)", sqlState: error.sqlState,
                retriable: error.sqlState == "57P01" || error.sqlState == "57P03")
        }
    }

    // MARK: - The loop

    private func streamUntilStopped() throws {
        guard let connection else { return }
        let maxBytes = source.options.maxBatchBytes
        readPausedSince = nil
        while !stopRequested {
            var ended = false
            if assembler.batch.bytes.count < maxBytes {
                readPausedSince = nil
                try connection.consumeInput()
                reading: while true {
                    switch try connection.getCopyData() {
                    case .message(let pointer, let length):
                        defer { connection.freeCopyBuffer(pointer) }
                        try handle(UnsafeRawBufferPointer(start: pointer, count: length))
                        if assembler.batch.bytes.count >= maxBytes { break reading }
                    case .wouldBlock:
                        break reading
                    case .done:
                        ended = true
                        break reading
                    }
                }
            }
            if ended {
                throw PostgresError(.connectionFailed, "the server ended the replication stream")
            }
            let filledBatch = assembler.batch.bytes.count >= maxBytes
            if assembler.hasDeliverableBatch, queue.hasRoom {
                try pushBlocking(whileStreaming: true)
            }
            try sendStatusIfDue()
            // After a full batch libpq may already hold more messages: read again at once.
            if filledBatch && assembler.batch.bytes.count < maxBytes { continue }
            try waitForWork(connection)
            try checkServerSilence()
        }
    }

    /// A peer that vanished without closing the connection sends nothing: half-way through
    /// `receive_timeout` ask the server for a reply, and treat the connection as lost when
    /// nothing at all arrived by the end.
    private func checkServerSilence() throws {
        let timeout = source.config.receiveTimeout
        let silent = ContinuousClock.now - lastServerTraffic
        if silent >= timeout {
            throw PostgresError(
                .connectionFailed,
                "no message from PostgreSQL for \(silent.components.seconds)s "
                    + "(receive_timeout \(timeout)): the replication connection is treated as lost")
        }
        if silent >= timeout / 2, !replyRequested {
            try sendStatus(force: true, requestReply: true)
            replyRequested = true
        }
    }

    /// Waits until the socket is readable (or the queue has room again), at most ~100 ms.
    private func waitForWork(_ connection: PGConnection) throws {
        if assembler.batch.bytes.count >= source.options.maxBatchBytes {
            let since = readPausedSince ?? .now
            readPausedSince = since
            try checkReadPause(since: since)
            queue.waitForRoom(timeout: .milliseconds(100))
            lastServerTraffic = .now  // not reading: the server's silence means nothing now
            return
        }
        var descriptor = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
        let flushed = try connection.flush()
        if !flushed { descriptor.events |= Int16(POLLOUT) }
        _ = poll(&descriptor, 1, assembler.batch.isEmpty ? 100 : 5)
    }

    /// Hands the current batch to the pipeline, waiting for room while still answering the server.
    /// `whileStreaming`: the replication connection is not read meanwhile, so after
    /// `maxReadPause` the wait ends with a `readPaused` error (see `checkReadPause`).
    func pushBlocking(whileStreaming: Bool) throws {
        var outgoing = assembler.batch
        outgoing.sequence = nextSequence
        var waited = false
        let since = ContinuousClock.now
        while !queue.put(outgoing, timeout: .milliseconds(100)) {
            waited = true
            try? sendStatusIfDue()
            if whileStreaming { try checkReadPause(since: readPausedSince ?? since) }
        }
        if waited { lastServerTraffic = .now }  // the socket was not read meanwhile
        lastPushedSequence = nextSequence
        nextSequence += 1
        assembler.batchWasHandedOut()
        try? sendStatusIfDue()  // long replays push often but never wait: keep the server informed
    }

    /// PostgreSQL cannot end a walsender whose client stops reading: the walsender's last
    /// message waits in the full socket, so a CHECKPOINT that invalidates the slot, a
    /// `pg_terminate_backend` or a fast shutdown would wait for pgbridge's sinks. When the sinks
    /// took nothing for `maxReadPause` while the stream was not reading, the connection is closed
    /// (what it had not handed out is sent again after the reconnect) until the queue has room.
    func checkReadPause(since: ContinuousClock.Instant) throws {
        guard connection != nil, ContinuousClock.now - since >= source.options.maxReadPause else { return }
        throw PostgresError(
            .readPaused,
            "the sinks took no events for \(source.options.maxReadPause.components.seconds)s"
                + " while the replication stream waited for them: closing the replication connection until they take"
                + " events again, so that PostgreSQL can end its walsender (a checkpoint or shutdown would otherwise"
                + " wait for it). Streaming resumes from the last confirmed position; check the sinks' errors above",
            retriable: true)
    }

    /// After a read pause: waits until the pipeline took a batch (the sinks work again). Every
    /// few seconds it looks at the slot: one that PostgreSQL invalidated meanwhile (its WAL was
    /// removed while the sinks were down) is returned as the error that stops the pipe.
    private func waitForQueueRoom() -> PostgresError? {
        var nextSlotCheck = ContinuousClock.now + .seconds(5)
        while !stopRequested && !queue.hasRoom {
            queue.waitForRoom(timeout: .milliseconds(100))
            guard ContinuousClock.now >= nextSlotCheck else { continue }
            nextSlotCheck = ContinuousClock.now + .seconds(5)
            if let state = try? catalog().slot(source.config.slot), state.walStatus == "lost" {
                return PostgresError(.slotInvalidated, SlotAdvice.lost(source.config.slot), retriable: false)
            }
        }
        return nil
    }

    // MARK: - Feedback

    func sendStatusIfDue() throws {
        let interval = source.config.statusInterval
        let ackedLSN = source.shared.withLock { $0.ackedLSN }
        let now = ContinuousClock.now
        let ackAdvanced = (ackedLSN ?? .zero) > lastFlushSent && now - lastStatusSent >= .milliseconds(200)
        if statusDue || ackAdvanced || now - lastStatusSent >= interval {
            try sendStatus(force: true)
        }
    }

    /// Standby status update: write = flush = apply = the newest position every sink confirmed.
    func sendStatus(force: Bool, requestReply: Bool = false) throws {
        guard let connection else { return }
        // The sequence first: `acknowledge` records the checkpoint before the sequence.
        let ackedSequence = source.thread.acknowledged
        let ackedLSN = source.shared.withLock { $0.ackedLSN }
        var flush = max(lastFlushSent, ackedLSN ?? .zero)
        // Nothing in flight (every handed-out batch acknowledged, no open transaction): advance to
        // the server's position so WAL of unpublished tables is released.
        let idle = assembler.isIdle && ackedSequence >= lastPushedSequence
        if idle && serverWalEnd > flush {
            flush = serverWalEnd
        }
        if flush > lastFlushSent {
            // Record first: the local record must never be behind what the slot was told.
            do {
                try checkpointStore.save(
                    .init(
                        lsn: flush, systemID: prepared.systemID, slot: source.config.slot, timeline: currentTimeline))
            } catch {
                logger.warning("\(error)")
            }
            forgetDroppedChunks(confirmedThrough: flush)
        }
        var message = [UInt8]()
        message.reserveCapacity(34)
        message.append(UInt8(ascii: "r"))
        for value in [flush.value, flush.value, flush.value] { appendBigEndian(value, &message) }
        let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        appendBigEndian(UInt64(bitPattern: PostgresTime.fromUnixMicroseconds(nowMicros)), &message)
        message.append(requestReply ? 1 : 0)
        try connection.putCopyData(message)
        if flush != lastFlushSent { logger.trace("confirmed", metadata: ["flush": "\(flush)"]) }
        lastFlushSent = flush
        lastStatusSent = .now
        statusDue = false
    }

    private func appendBigEndian(_ value: UInt64, _ out: inout [UInt8]) {
        var big = value.bigEndian
        withUnsafeBytes(of: &big) { out.append(contentsOf: $0) }
    }

    // MARK: - Server messages

    /// One CopyData message from the server: XLogData (`w`) or keepalive (`k`).
    func handle(_ message: UnsafeRawBufferPointer) throws {
        guard let kind = message.first else { return }
        lastServerTraffic = .now
        replyRequested = false
        var reader = ByteReader(message, position: 1)
        switch kind {
        case UInt8(ascii: "w"):
            let dataStart = try reader.uint64("XLogData start")
            _ = try reader.uint64("XLogData end")
            let sendTime = try reader.int64("XLogData time")
            if logger.logLevel <= .trace, message.count > 25 {
                logger.trace(
                    "message",
                    metadata: ["type": "\(Character(UnicodeScalar(message[25])))", "lsn": "\(LSN(dataStart))"])
            }
            do {
                try assembler.handle(
                    UnsafeRawBufferPointer(rebasing: message[25...]), lsn: dataStart, serverTime: sendTime)
            } catch PgOutputError.unknownRelation(let oid) where assembler.decoder.evictions > 0 {
                throw PostgresError(
                    .connectionFailed,
                    "a change for relation OID \(oid) arrived after pgbridge evicted that relation from its cache "
                        + "(more than \(assembler.decoder.maxRelations) relations announced on this connection, or a "
                        + "dropped chunk): reconnecting, so that PostgreSQL announces it again",
                    retriable: true)
            }
        case UInt8(ascii: "k"):
            let walEnd = try reader.uint64("keepalive WAL end")
            _ = try reader.int64("keepalive time")
            let replyRequested = try reader.uint8("reply flag")
            if walEnd > serverWalEnd.value { serverWalEnd = LSN(walEnd) }
            logger.trace("keepalive", metadata: ["wal_end": "\(LSN(walEnd))", "reply": "\(replyRequested)"])
            if replyRequested == 1 { try sendStatus(force: true) }
        default:
            break  // unknown message types are ignored, as the protocol asks
        }
    }
}
