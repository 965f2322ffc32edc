import BridgeCore
import Foundation
import Logging
import PostgresClient

extension ReplicationSource {
    /// What the stream needs from setup.
    struct Prepared: Sendable {
        let database: String
        let systemID: String
        let timeline: String
        /// The server's WAL position at start (IDENTIFY_SYSTEM xlogpos).
        let serverWAL: LSN
        /// The slot did not exist and was created by this start.
        let slotCreated: Bool
        let tables: [String]
        let resolvedTables: [CaptureCatalog.Table]
        /// OIDs of the captured hypertables (their chunks are kept in the publication).
        let hypertables: [UInt32]
        /// The slot's confirmed position when we started (nil for a new slot).
        let slotConfirmed: LSN?
        /// The slot existed before and is gone: the stream creates it again with an exported
        /// snapshot and re-reads the tables (`on_slot_lost: resnapshot`).
        var resnapshot = false
    }

    /// Checks prerequisites, creates the publication and the slot when missing (publication
    /// first), and reads the system identifier. Blocking: runs on a dedicated thread.
    func prepare() throws -> Prepared {
        let connection = try PGConnection(url: postgres.url, mode: .normal)
        let catalog = CaptureCatalog(connection: connection)
        let walLevel = try catalog.walLevel()
        guard walLevel == "logical" else {
            throw PostgresError(
                .prerequisite,
                "wal_level is '\(walLevel)' but capture needs 'logical': run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"
            )
        }
        let database = try catalog.currentDatabase()
        let (tables, missing) = try catalog.resolve(config.tables, configPath: "pipes[\(pipeName)].source.tables")
        let problems = missing + CaptureCatalog.replicaIdentityProblems(tables)
        guard problems.isEmpty else {
            throw PostgresError(.prerequisite, problems.joined(separator: "\n"))
        }
        let timescale = try catalog.timescaleState()
        let hypertables = try catalog.hypertables(among: tables, state: timescale)
        if !hypertables.isEmpty && timescale.isPresent {
            enableChunkAutoPublication(connection: connection, database: database)
        }
        var published = tables
        for hypertable in tables where hypertables.contains(hypertable.oid) {
            published += try catalog.chunks(of: hypertable.oid)
        }
        try ensurePublication(catalog: catalog, tables: published)
        if !hypertables.isEmpty && timescale.hasHypertableCatalog {
            publishChunkCatalog(catalog: catalog)
        }

        var slotConfirmed: LSN?
        if let slot = try catalog.slot(config.slot) {
            let slotProblems = CaptureCatalog.slotProblems(slot, database: database)
            guard slotProblems.isEmpty else {
                throw PostgresError(
                    slot.walStatus == "lost" ? .slotInvalidated : .prerequisite, slotProblems.joined(separator: "\n"))
            }
            slotConfirmed = slot.confirmedFlush
        }
        let replication = try PGConnection(url: postgres.url, mode: .replication)
        let identity = try replication.execute("IDENTIFY_SYSTEM")
        let systemID = identity.string(0, "systemid") ?? ""
        let timeline = identity.string(0, "timeline") ?? ""
        let serverWAL = identity.string(0, "xlogpos").flatMap { LSN($0) } ?? .zero
        // A slot that existed (this pipe confirmed positions from it on this cluster) and is gone
        // now: never created again silently at the current position, which would skip every
        // change made in between.
        var resnapshot = false
        if slotConfirmed == nil,
            let record = (try? CheckpointStore(directory: stateDirectory, pipe: pipeName))?.load(),
            record.systemID == systemID, record.slot == config.slot
        {
            guard config.onSlotLost == .resnapshot || config.snapshot == .initial else {
                throw PostgresError(
                    .slotMissing,
                    SlotAdvice.missing(
                        config.slot, confirmed: record.lsn, timeline: record.timeline,
                        checkpoint: CheckpointStore.path(directory: stateDirectory, pipe: pipeName)))
            }
            logger.warning(
                Logger.Message(
                    stringLiteral:
                        "replication slot \(config.slot) is gone although this pipe read from it (confirmed up to \(record.lsn)): "
                        + "creating it again and re-reading the captured tables (on_slot_lost: resnapshot)"))
            SnapshotProgress.remove(directory: stateDirectory, pipe: pipeName)
            resnapshot = true
        }
        // With `snapshot: initial` (or a resnapshot) the replication thread creates the slot
        // itself, exporting the snapshot it reads the tables under.
        if slotConfirmed == nil && config.snapshot != .initial && !resnapshot {
            do {
                let created = try replication.execute(
                    "CREATE_REPLICATION_SLOT \(SQL.identifier(config.slot)) LOGICAL pgoutput (SNAPSHOT 'nothing')")
                logger.info(
                    "created replication slot",
                    metadata: [
                        "slot": "\(config.slot)", "consistent_point": "\(created.string(0, "consistent_point") ?? "")",
                    ])
            } catch let error as PostgresError where Self.isConcurrentCreation(error) {
                // Created concurrently by another replica: fine.
            } catch let error as PostgresError where error.sqlState == "53400" {
                throw PostgresError(
                    .prerequisite,
                    "cannot create replication slot \(config.slot): all replication slots are in use. "
                        + "Drop unused slots (`pgbridge slots` lists them, `pgbridge slots drop NAME` removes one) "
                        + "or raise max_replication_slots", sqlState: error.sqlState)
            }
        }
        return Prepared(
            database: database, systemID: systemID, timeline: timeline, serverWAL: serverWAL,
            slotCreated: slotConfirmed == nil, tables: tables.map(\.display), resolvedTables: tables,
            hypertables: tables.filter { hypertables.contains($0.oid) }.map(\.oid), slotConfirmed: slotConfirmed,
            resnapshot: resnapshot)
    }

    /// TimescaleDB (>= 2.25) adds a new chunk to its hypertable's publications in the chunk's
    /// own transaction when this is on in the creating session, so the chunk's first rows are
    /// published. Set for the database; the reconciler covers sessions that started before.
    private func enableChunkAutoPublication(connection: PGConnection, database: String) {
        do {
            try connection.execute(
                "ALTER DATABASE \(SQL.identifier(database)) SET timescaledb.enable_chunk_auto_publication = on")
            logger.info("set timescaledb.enable_chunk_auto_publication = on", metadata: ["database": "\(database)"])
        } catch {
            logger.warning(
                Logger.Message(
                    stringLiteral:
                        "cannot set timescaledb.enable_chunk_auto_publication for database \(database): \(error). "
                        + "Run ALTER DATABASE \(SQL.identifier(database)) SET timescaledb.enable_chunk_auto_publication = on "
                        + "as its owner; until then pgbridge adds new chunks to the publication after they appear, and their "
                        + "first rows can be missed"))
        }
    }
}
