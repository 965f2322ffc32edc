import BridgeCore
import Foundation
import Logging
import PostgresClient

/// The pipe's publication: created when missing, and tables added to it, never dropped or
/// recreated under a live slot. Several pipes (or replicas) commonly share one publication and
/// start together, so every step tolerates another session doing the same thing at the same
/// moment: PostgreSQL then answers `duplicate_object` (42710) or, for two catalog inserts that
/// race, `unique_violation` (23505); the publication is read again and what is still missing added.
extension ReplicationSource {
    static func isConcurrentCreation(_ error: PostgresError) -> Bool {
        error.sqlState == "42710" || error.sqlState == "23505"
    }

    /// Makes sure `tables` are published (creating the publication when `create` and it is
    /// missing). Returns whether it was created and what was added.
    @discardableResult
    func publish(_ tables: [CaptureCatalog.Table], catalog: CaptureCatalog, create: Bool) throws -> (
        created: Bool, added: [CaptureCatalog.Table]
    ) {
        let name = SQL.identifier(config.publication)
        var attempt = 0
        while true {
            attempt += 1
            let publication = try catalog.publication(config.publication)
            do {
                if !publication.exists {
                    guard create else { return (false, []) }
                    try catalog.connection.execute(
                        "CREATE PUBLICATION \(name) FOR TABLE \(tables.map(\.qualified).joined(separator: ", "))")
                    return (true, tables)
                }
                guard !publication.allTables else { return (false, []) }
                let missing = tables.filter { !publication.tables.contains($0.oid) }
                guard !missing.isEmpty else { return (false, []) }
                try catalog.connection.execute(
                    "ALTER PUBLICATION \(name) ADD TABLE \(missing.map(\.qualified).joined(separator: ", "))")
                return (false, missing)
            } catch let error as PostgresError where error.sqlState == "42501" {
                // insufficient_privilege: say which privilege, and the SQL that grants it.
                let problems =
                    (try? catalog.privilegeProblems(
                        tables: tables, publicationName: config.publication, publication: publication, snapshot: false))
                    ?? []
                throw PostgresError(
                    .prerequisite,
                    problems.isEmpty
                        ? "cannot publish the pipe's tables in \(config.publication): \(error.message)"
                        : problems.joined(separator: "\n"),
                    sqlState: error.sqlState, retriable: false)
            } catch let error as PostgresError where Self.isConcurrentCreation(error) && attempt < 10 {
                logger.debug(
                    "publication changed concurrently; reading it again",
                    metadata: ["publication": "\(config.publication)", "sqlstate": "\(error.sqlState ?? "")"])
            }
        }
    }

    func ensurePublication(catalog: CaptureCatalog, tables: [CaptureCatalog.Table]) throws {
        let (created, added) = try publish(tables, catalog: catalog, create: true)
        if created {
            logger.info(
                "created publication",
                metadata: ["publication": "\(config.publication)", "tables": "\(tables.map(\.display))"])
        } else if !added.isEmpty {
            logger.info(
                "added tables to publication",
                metadata: ["publication": "\(config.publication)", "tables": "\(added.map(\.display))"])
        }
    }

    /// Retention (`drop_chunks`) is visible only as deletes of `_timescaledb_catalog.chunk`
    /// rows: publish that table so they can become `chunk_dropped` events, and so a chunk's
    /// hypertable is known from the stream even when the chunk is gone before it is decoded.
    /// TimescaleDB 2.28 also links `dimension_slice` rows to their chunk (`chunk_id`): published
    /// too, they give the range of such a chunk.
    func publishChunkCatalog(catalog: CaptureCatalog) {
        var wanted = ["_timescaledb_catalog.chunk"]
        do {
            let slicesHaveChunk =
                try catalog.connection.execute(
                    """
                    SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('_timescaledb_catalog.dimension_slice')
                                   AND attname = 'chunk_id' AND NOT attisdropped)
                    """
                ).string(0, 0) == "t"
            if slicesHaveChunk { wanted.append("_timescaledb_catalog.dimension_slice") }
            var tables: [CaptureCatalog.Table] = []
            for table in wanted {
                guard
                    let oid = try catalog.connection.execute("SELECT to_regclass($1)::oid", [table]).string(0, 0)
                        .flatMap({ UInt32($0) })
                else { continue }
                let parts = table.split(separator: ".").map(String.init)
                tables.append(
                    .init(oid: oid, schema: parts[0], name: parts[1], replicaIdentity: "d", hasPrimaryKey: true))
            }
            try publish(tables, catalog: catalog, create: false)
        } catch {
            // One log line (the error lists each table's problem on a line of its own).
            logger.warning(
                Logger.Message(
                    stringLiteral:
                        "cannot add TimescaleDB's catalog tables to publication \(config.publication): "
                        + "\(String(describing: error).split(separator: "\n").joined(separator: "; ")). "
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
        var chunks: [CaptureCatalog.Table] = []
        for hypertable in hypertables {
            chunks += try catalog.chunks(of: hypertable)
        }
        return try publish(chunks, catalog: catalog, create: false).added.map(\.display)
    }
}
