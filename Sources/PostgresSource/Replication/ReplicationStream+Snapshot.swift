import BridgeCore
import Foundation
import Logging
import PostgresClient

extension ReplicationStream {
    /// Runs the initial snapshot when `snapshot: initial` asks for one and it is not done yet.
    /// Returns the replication connection that created the slot (START_REPLICATION must run on
    /// it, after the reads, for the stream to begin exactly at the snapshot's consistent point).
    /// `force`: the slot is being created again (`on_slot_lost: resnapshot`), whatever `snapshot` says.
    func runSnapshotIfNeeded(force: Bool = false) throws -> PGConnection? {
        guard source.config.snapshot == .initial || force else { return nil }
        let path = SnapshotProgress.path(directory: source.stateDirectory, pipe: source.pipeName)
        let stored = SnapshotProgress.load(path: path)
        let catalogURL = source.postgres.url
        if try slotExists(), stored?.status == .creating {
            // A previous start died between creating the slot and reading anything: nothing was
            // streamed from the slot, so it is dropped and the snapshot starts over.
            logger.warning("dropping replication slot \(source.config.slot) left by an interrupted snapshot start")
            let admin = try PGConnection(url: source.postgres.url, mode: .normal)
            try admin.execute("SELECT pg_drop_replication_slot($1)", [source.config.slot])
        }
        if try slotExists() {
            guard let stored, stored.status == .inProgress else { return nil }  // done, or the slot predates it
            stored.beginAttempt()
            try stored.save()
            logger.warning(
                Logger.Message(
                    stringLiteral:
                        "resuming the interrupted snapshot after \(stored.completed.count) completed table(s)/chunk(s) with a new "
                        + "database snapshot: rows changed since the first attempt may be delivered twice (once here, once streamed)"
                ))
            let reader = try PGConnection(url: catalogURL, mode: .normal)
            try reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try readSnapshot(reader: reader, progress: stored)
            return nil
        }
        // A new slot exporting its snapshot; nothing else may run on this connection until the reads end.
        let creating = SnapshotProgress(path: path, consistentPoint: .zero)
        creating.status = .creating
        try creating.save()
        let replication = try PGConnection(url: catalogURL, mode: .replication)
        let created = try replication.execute(
            "CREATE_REPLICATION_SLOT \(SQL.identifier(source.config.slot)) LOGICAL pgoutput (SNAPSHOT 'export')")
        guard let point = created.string(0, "consistent_point").flatMap({ LSN($0) }),
            let snapshotName = created.string(0, "snapshot_name")
        else {
            throw PostgresError(.protocolViolation, "CREATE_REPLICATION_SLOT returned no snapshot", retriable: false)
        }
        logger.info(
            "created replication slot with an exported snapshot",
            metadata: ["slot": "\(source.config.slot)", "consistent_point": "\(point)"])
        let progress = SnapshotProgress(path: path, consistentPoint: point)
        try progress.save()
        let reader = try PGConnection(url: catalogURL, mode: .normal)
        try reader.execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT \(SQL.literal(snapshotName))")
        try readSnapshot(reader: reader, progress: progress)
        return replication
    }

    private func slotExists() throws -> Bool {
        let connection = try PGConnection(url: source.postgres.url, mode: .normal)
        return try CaptureCatalog(connection: connection).slot(source.config.slot) != nil
    }

    /// Reads every unit not completed yet in bounded batches (a cursor), handing the rows to the
    /// pipeline as `read` events. Progress is saved only after the sinks acknowledged the rows.
    private func readSnapshot(reader: PGConnection, progress: SnapshotProgress) throws {
        let catalog = CaptureCatalog(connection: reader)
        let state = try catalog.timescaleState()
        let planned = try catalog.snapshotPlan(
            tables: prepared.resolvedTables, hypertables: Set(prepared.hypertables), range: source.config.snapshotRange,
            state: state, continuousAggregates: source.config.continuousAggregates)
        let units = try catalog.lockUnits(planned.filter { !progress.completed.contains($0.name) }) {
            logger.warning("\($0)")
        }
        let pending = units.filter { !progress.completed.contains($0.name) }
        let estimated = pending.reduce(0) { $0 + $1.estimatedRows }
        let started = ContinuousClock.now
        var lastLog = started
        var rowsDone = 0
        let batchRows = source.config.snapshotBatchRows
        let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let context = TransactionContext(
            commitLSN: progress.consistentPoint, xid: 0, commitTime: PostgresTime.fromUnixMicroseconds(nowMicros),
            capture: .snapshot)
        logger.info("snapshot started", metadata: ["units": "\(pending.count)", "estimated_rows": "\(estimated)"])

        for unit in pending {
            let resumeKey = progress.position?.unit == unit.name ? progress.position?.key : nil
            var rowsSinceSave = 0
            let finished = try SnapshotCursor.read(
                unit, on: reader, resumeKey: resumeKey, batchRows: batchRows,
                onRow: { row in
                    let change = RowChange(
                        op: .read, relation: unit.relation, lsn: progress.consistentPoint, ordinal: progress.ordinal,
                        new: row)
                    assembler.encoder.encode(change, in: context, into: &assembler.batch.bytes)
                    assembler.batch.endEvent()
                    progress.ordinal += 1
                    if assembler.batch.bytes.count >= source.options.maxBatchBytes {
                        try pushBlocking(whileStreaming: false)
                    }
                },
                afterFetch: { rows, lastKey in
                    rowsDone += rows
                    rowsSinceSave += rows
                    if let lastKey, rowsSinceSave >= 10 * batchRows {
                        progress.position = (unit.name, lastKey)
                        try persist(progress)
                        rowsSinceSave = 0
                    }
                    if ContinuousClock.now - lastLog >= .seconds(10) {
                        lastLog = .now
                        let percent = estimated > 0 ? " (\(min(100, rowsDone * 100 / estimated))%)" : ""
                        logger.info(
                            "snapshot progress: \(rowsDone) of ~\(estimated) rows\(percent)",
                            metadata: ["unit": "\(unit.name)"])
                    }
                    // On a stop request, the position saved last is where the next start resumes.
                    return !stopRequested
                })
            guard finished else { return }
            progress.completed.insert(unit.name)
            progress.position = nil
            try persist(progress)
        }
        try reader.execute("COMMIT")
        progress.status = .done
        try progress.save()
        logger.info(
            "snapshot done: \(rowsDone) rows in \(ContinuousClock.now - started)",
            metadata: ["consistent_point": "\(progress.consistentPoint)"])
    }

    /// Hands out what is batched, waits until every sink acknowledged it, then saves progress.
    private func persist(_ progress: SnapshotProgress) throws {
        if !assembler.batch.isEmpty { try pushBlocking(whileStreaming: false) }
        let target = lastPushedSequence
        if source.thread.waitForAcknowledgement(through: target) == .finishing {
            throw PostgresError(.connectionFailed, "the pipe stopped during the snapshot", retriable: false)
        }
        try progress.save()
    }
}
