import BridgeCore
import Foundation
import Logging
import PostgresClient

/// Catalog lookups of the replication thread: what to report for each relation, and what is
/// known about TimescaleDB chunks (see `ChunkMap`).
extension ReplicationStream {
    /// A normal connection for catalog questions (opened on first use, again after it broke).
    func catalog() throws -> CaptureCatalog {
        if catalogConnection == nil || catalogConnection?.isBroken == true {
            catalogConnection = try PGConnection(url: source.postgres.url, mode: .normal)
            timescaleState = nil
            hypertableMetadata = [:]
        }
        return CaptureCatalog(connection: catalogConnection!)
    }

    func timescale(_ catalog: CaptureCatalog) throws -> CaptureCatalog.TimescaleState {
        let state = try timescaleState ?? catalog.timescaleState()
        timescaleState = state
        return state
    }

    /// Wraps catalog failures: connection problems are retried (the server resends the Relation
    /// message after a reconnect, so a chunk is never reported under its own name by mistake);
    /// a failing query (e.g. no permission on the catalog) stops the pipe.
    func catalogLookup<T>(_ what: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as PostgresError {
            catalogConnection = nil
            throw PostgresError(
                error.code, "\(what()) failed: \(error.message)", sqlState: error.sqlState,
                retriable: error.isRetriable)
        }
    }

    // MARK: - TimescaleDB catalog

    /// Learns the hypertables, dimensions and chunks the live catalog has now (on every connect).
    func loadTimescaleCatalog() throws {
        try catalogLookup("reading TimescaleDB's catalog") {
            let catalog = try catalog()
            guard try timescale(catalog).hasHypertableCatalog else { return }
            let before = chunkMap
            chunkMap.learn(hypertables: try catalog.hypertableList())
            for chunk in try catalog.chunkList() { chunkMap.learn(chunk) }
            try loadDimensions(catalog)
            if chunkMap != before { saveChunkMap() }
        }
    }

    private func loadDimensions(_ catalog: CaptureCatalog) throws {
        guard try catalog.exists("_timescaledb_catalog.dimension") else { return }
        let result = try catalog.connection.execute(
            """
            SELECT id, hypertable_id,
                   column_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
            FROM _timescaledb_catalog.dimension
            """)
        for row in 0..<result.rowCount {
            guard let id = result.string(row, 0).flatMap({ Int64($0) }),
                let hypertable = result.string(row, 1).flatMap({ Int64($0) })
            else { continue }
            dimensions[id] = (hypertable, result.string(row, 2) == "t")
        }
    }

    /// A chunk or slice row from the stream. A new chunk's range is read from the live catalog
    /// when it is still there, else from its slice rows in the stream (TimescaleDB 2.28 inserts
    /// them right after the chunk row, with the chunk's id).
    func learn(_ row: TimescaleCatalogRow) throws {
        let before = chunkMap
        switch row {
        case .chunk(let id, let hypertableID, let schema, let name):
            chunkMap.learn(ChunkMap.Chunk(id: id, hypertableID: hypertableID, schema: schema, name: name))
            try catalogLookup("reading TimescaleDB's catalog for chunk \(schema).\(name)") {
                let catalog = try catalog()
                if chunkMap.hypertable(id: hypertableID) == nil {
                    chunkMap.learn(hypertables: try catalog.hypertableList())
                }
                if chunkMap.chunk(id: id)?.rangeStart == nil, chunkMap.chunk(id: id)?.rangeEnd == nil,
                    let live = try waitWhileDecodedTransactionRuns(
                        catalog, until: { try catalog.chunkList(id: id).first })
                {
                    chunkMap.setRange(chunkID: id, start: live.rangeStart, end: live.rangeEnd)
                }
            }
        case .slice(_, let chunkID, let dimensionID, let rangeStart, let rangeEnd):
            if dimensions[dimensionID] == nil {
                try catalogLookup("reading TimescaleDB's dimensions") { try loadDimensions(catalog()) }
            }
            guard let chunk = chunkMap.chunk(id: chunkID), let dimension = dimensions[dimensionID],
                dimension.hypertableID == chunk.hypertableID,
                // The first (time) dimension has the hypertable's lowest dimension id.
                !dimensions.contains(where: { $0.value.hypertableID == chunk.hypertableID && $0.key < dimensionID })
            else { break }
            chunkMap.setRange(
                chunkID: chunkID, start: Self.rangeText(rangeStart, isTime: dimension.isTime),
                end: Self.rangeText(rangeEnd, isTime: dimension.isTime))
        }
        if chunkMap != before { saveChunkMap() }
    }

    /// Slice bounds are int64, microseconds since the Unix epoch for time dimensions; the int64
    /// extremes mean "open".
    static func rangeText(_ value: Int64, isTime: Bool) -> String? {
        guard value != .min, value != .max else { return nil }
        guard isTime else { return String(value) }
        var bytes: [UInt8] = []
        PostgresTime.writeRFC3339(PostgresTime.fromUnixMicroseconds(value), into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A chunk's catalog row was deleted (retention). Known chunks are remembered until the drop
    /// is confirmed, so a replay reports it again.
    func chunkDropped(id: Int64, commitLSN: LSN) throws -> ChunkRecord? {
        guard let chunk = chunkMap.chunk(id: id) else {
            logger.warning(
                Logger.Message(
                    stringLiteral:
                        "TimescaleDB chunk \(id) was dropped, but pgbridge never saw it (it predates this pipe's "
                        + "state in \(chunkStore.path) and was gone before pgbridge read the catalog): if it was a chunk "
                        + "of a captured hypertable, its chunk_dropped event is missing; no row changes are affected"))
            return nil
        }
        chunkMap.markDropped(chunkID: id, at: commitLSN)
        saveChunkMap()
        // Its table is dropped in the same transaction: no change for it can follow.
        assembler.decoder.forgetChunk("\(chunk.schema).\(chunk.name)")
        guard let record = chunkMap.record(chunkID: id) else {
            logger.debug(
                "TimescaleDB chunk dropped, not of a captured hypertable",
                metadata: ["chunk": "\(chunk.display)", "hypertable_id": "\(chunk.hypertableID)"])
            return nil
        }
        return record
    }

    func forgetDroppedChunks(confirmedThrough confirmed: LSN) {
        if chunkMap.forgetDropped(confirmedThrough: confirmed) { saveChunkMap() }
    }

    private func saveChunkMap() {
        do {
            try chunkStore.save(chunkMap)
        } catch {
            logger.warning(
                "cannot save the TimescaleDB chunk map: \(error); chunks dropped while pgbridge is stopped may not be reported"
            )
        }
    }

    // MARK: - Relations

    /// A change is decoded once its commit record is flushed, a moment before the commit is
    /// visible to other sessions: what it created may not be visible yet. Asks `lookup` again
    /// while the decoded transaction still runs (at most 5 s), and not at all once it has ended
    /// (then what is missing was dropped since).
    func waitWhileDecodedTransactionRuns<T>(_ catalog: CaptureCatalog, until lookup: () throws -> T?) throws -> T? {
        if let found = try lookup() { return found }
        guard let xid = assembler.transaction?.xid else { return nil }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline, try catalog.transactionIsRunning(xid: xid) {
            try? sendStatusIfDue()
            // A stop does not cut this wait short: the relation must be resolved either way.
            source.thread.wait(.milliseconds(5))
            if let found = try lookup() { return found }
        }
        return try lookup()
    }

    /// Primary key and TimescaleDB chunk mapping for a relation, asked on every Relation message
    /// (rare). A relation is skipped only when it is provably not captured; one that cannot be
    /// resolved is logged as an error (once) and its rows are delivered under the name sent.
    func relationMetadata(oid: UInt32, schema: String, name: String) throws -> PgOutputDecoder.RelationMetadata {
        try catalogLookup("catalog lookup for relation \(schema).\(name) (OID \(oid))") {
            let catalog = try catalog()
            let state = try timescale(catalog)
            var metadata: PgOutputDecoder.RelationMetadata
            let captured: Bool
            if let chunk = chunkMap.chunk(schema: schema, name: name) {
                // Known from the stream or the catalog: mapped even when the chunk is gone.
                return try metadataOfChunk(chunk, schema: schema, name: name, oid: oid, catalog: catalog, state: state)
            } else if try waitWhileDecodedTransactionRuns(
                catalog, until: { try catalog.relationExists(oid: oid) ? true : nil })
                != nil
            {
                metadata = try catalog.metadata(
                    oid: oid, schema: schema, name: name, continuousAggregates: source.config.continuousAggregates,
                    state: state,
                    hypertables: chunkMap.hypertableIDsByName)
                captured =
                    metadata.timescaleCatalog != nil || capturedOIDs.contains(oid)
                    || metadata.parent.map { capturedNames.contains("\($0.schema).\($0.table)") } == true
            } else if schema == ChunkMap.chunkSchema, let ids = ChunkMap.ids(fromChunkName: name) {
                // A chunk dropped before it was decoded whose catalog row was not seen (the chunk
                // catalog is not published): TimescaleDB's default chunk name holds the hypertable id.
                let chunk = ChunkMap.Chunk(id: ids.chunk, hypertableID: ids.hypertable, schema: schema, name: name)
                return try metadataOfChunk(chunk, schema: schema, name: name, oid: oid, catalog: catalog, state: state)
            } else if capturedOIDs.contains(oid) {
                metadata = PgOutputDecoder.RelationMetadata()  // a captured table dropped since
                captured = true
            } else {
                return unresolved(oid: oid, schema: schema, name: name, why: "it is no longer in the catalog")
            }
            // Report only what the pipe captures (a shared or FOR ALL TABLES publication may hold more).
            if !captured {
                metadata.isSuppressed = true
                logger.debug("relation not captured by this pipe", metadata: ["relation": "\(schema).\(name)"])
            }
            logger.debug(
                "relation metadata",
                metadata: [
                    "oid": "\(oid)", "schema": "\(schema)",
                    "report_as": "\(metadata.reportAs.map { "\($0.schema).\($0.table)" } ?? "-")",
                ])
            return metadata
        }
    }

    private func metadataOfChunk(
        _ chunk: ChunkMap.Chunk, schema: String, name: String, oid: UInt32, catalog: CaptureCatalog,
        state: CaptureCatalog.TimescaleState
    ) throws -> PgOutputDecoder.RelationMetadata {
        if chunkMap.hypertable(id: chunk.hypertableID) == nil {
            chunkMap.learn(hypertables: try catalog.hypertableList())
        }
        guard let hypertable = chunkMap.hypertable(id: chunk.hypertableID) else {
            return unresolved(
                oid: oid, schema: schema, name: name,
                why: "it is a TimescaleDB chunk of hypertable id \(chunk.hypertableID), which pgbridge does not know")
        }
        guard chunkMap.isCaptured(chunk) == true else {
            logger.debug(
                "chunk of a hypertable not captured by this pipe",
                metadata: ["relation": "\(schema).\(name)", "hypertable": "\(hypertable.display)"])
            var metadata = PgOutputDecoder.RelationMetadata()
            metadata.isSuppressed = true
            return metadata
        }
        if let cached = hypertableMetadata[hypertable.id] { return cached }
        let metadata = try catalog.chunkMetadata(
            of: hypertable, continuousAggregates: source.config.continuousAggregates, state: state)
        hypertableMetadata[hypertable.id] = metadata
        return metadata
    }

    private func unresolved(oid: UInt32, schema: String, name: String, why: String) -> PgOutputDecoder.RelationMetadata
    {
        if unresolvedRelations.insert(oid).inserted {
            logger.error(
                Logger.Message(
                    stringLiteral:
                        "cannot resolve relation \(schema).\(name) (OID \(oid)) of publication \(source.config.publication): "
                        + "\(why). Its changes are delivered under that name, nothing is dropped. This happens when a "
                        + "table is dropped before pgbridge decodes its changes; if it is not one of the pipe's tables, "
                        + "keep it out of the publication"))
        }
        return PgOutputDecoder.RelationMetadata()
    }
}
