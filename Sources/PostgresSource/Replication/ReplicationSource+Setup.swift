import BridgeCore
import Foundation
import Logging

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
        try ensurePublication(catalog: catalog, connection: connection, tables: published)
        if !hypertables.isEmpty && timescale.hasHypertableCatalog {
            publishChunkCatalog(catalog: catalog, connection: connection)
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
        // With `snapshot: initial` the replication thread creates the slot itself, exporting the
        // snapshot it reads the tables under.
        if slotConfirmed == nil && config.snapshot != .initial {
            do {
                let created = try replication.execute(
                    "CREATE_REPLICATION_SLOT \(SQL.identifier(config.slot)) LOGICAL pgoutput (SNAPSHOT 'nothing')")
                logger.info(
                    "created replication slot",
                    metadata: [
                        "slot": "\(config.slot)", "consistent_point": "\(created.string(0, "consistent_point") ?? "")",
                    ])
            } catch let error as PostgresError where error.sqlState == "42710" {
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
            hypertables: tables.filter { hypertables.contains($0.oid) }.map(\.oid), slotConfirmed: slotConfirmed)
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

    /// Retention (`drop_chunks`) is visible only as deletes of `_timescaledb_catalog.chunk`
    /// rows: publish that table so they can become `chunk_dropped` events, and so a chunk's
    /// hypertable is known from the stream even when the chunk is gone before it is decoded.
    /// TimescaleDB 2.28 also links `dimension_slice` rows to their chunk (`chunk_id`): published
    /// too, they give the range of such a chunk.
    private func publishChunkCatalog(catalog: CaptureCatalog, connection: PGConnection) {
        var wanted = ["_timescaledb_catalog.chunk"]
        do {
            let slicesHaveChunk =
                try connection.execute(
                    """
                    SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('_timescaledb_catalog.dimension_slice')
                                   AND attname = 'chunk_id' AND NOT attisdropped)
                    """
                ).string(0, 0) == "t"
            if slicesHaveChunk { wanted.append("_timescaledb_catalog.dimension_slice") }
            let publication = try catalog.publication(config.publication)
            guard !publication.allTables else { return }
            var missing: [String] = []
            for table in wanted {
                let oid = try connection.execute("SELECT to_regclass($1)::oid", [table]).string(0, 0).flatMap {
                    UInt32($0)
                }
                if let oid, !publication.tables.contains(oid) { missing.append(table) }
            }
            guard !missing.isEmpty else { return }
            try connection.execute(
                "ALTER PUBLICATION \(SQL.identifier(config.publication)) ADD TABLE \(missing.joined(separator: ", "))")
        } catch {
            logger.warning(
                Logger.Message(
                    stringLiteral:
                        "cannot add TimescaleDB's catalog tables to publication \(config.publication): \(error). "
                        + "Retention (drop_chunks) will not be reported as chunk_dropped events, and rows of chunks dropped "
                        + "before pgbridge decodes them are mapped by chunk name only; run ALTER PUBLICATION "
                        + "\(SQL.identifier(config.publication)) ADD TABLE \(wanted.joined(separator: ", ")) as a superuser"
                ))
        }
    }

    /// Adds chunks of the captured hypertables that are missing from the publication (created
    /// in a session without auto-publication, or by an older TimescaleDB). Returns their names.
    func reconcileChunks(hypertables: [UInt32]) throws -> [String] {
        guard !hypertables.isEmpty else { return [] }
        let connection = try PGConnection(url: postgres.url, mode: .normal)
        let catalog = CaptureCatalog(connection: connection)
        let publication = try catalog.publication(config.publication)
        guard publication.exists, !publication.allTables else { return [] }
        var missing: [CaptureCatalog.Table] = []
        for hypertable in hypertables {
            missing += try catalog.chunks(of: hypertable).filter { !publication.tables.contains($0.oid) }
        }
        guard !missing.isEmpty else { return [] }
        try connection.execute(
            "ALTER PUBLICATION \(SQL.identifier(config.publication)) ADD TABLE \(missing.map(\.qualified).joined(separator: ", "))"
        )
        return missing.map(\.display)
    }

    private func ensurePublication(catalog: CaptureCatalog, connection: PGConnection, tables: [CaptureCatalog.Table])
        throws
    {
        let publication = try catalog.publication(config.publication)
        let name = SQL.identifier(config.publication)
        if !publication.exists {
            let list = tables.map(\.qualified).joined(separator: ", ")
            try connection.execute("CREATE PUBLICATION \(name) FOR TABLE \(list)")
            logger.info(
                "created publication",
                metadata: ["publication": "\(config.publication)", "tables": "\(tables.map(\.display))"])
            return
        }
        guard !publication.allTables else { return }
        // Never drop or recreate a publication under a live slot: only add what is missing.
        let missing = tables.filter { !publication.tables.contains($0.oid) }
        guard !missing.isEmpty else { return }
        try connection.execute(
            "ALTER PUBLICATION \(name) ADD TABLE \(missing.map(\.qualified).joined(separator: ", "))")
        logger.info(
            "added tables to publication",
            metadata: ["publication": "\(config.publication)", "tables": "\(missing.map(\.display))"])
    }
}
