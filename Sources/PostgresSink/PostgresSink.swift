import BridgeCore
import Foundation
import Logging
import PostgresClient

/// Applies change events to another PostgreSQL database in one target transaction per
/// delivery: the events are staged with `COPY`, applied per table with set-based statements
/// that keep the last change per key, and the sink's position is recorded in the same
/// transaction (`pgbridge.sink_positions`), so a crash anywhere applies each change once.
///
/// The connection and what is known of the target live on one confined queue: libpq's
/// blocking calls never hold a thread of Swift's cooperative pool.
public final class PostgresSink: EventSink {
    /// The target as the sink's queue sees it.
    final class Target {
        var connection: PGConnection?
        var tables: [String: TargetTable] = [:]
        var applied = AppliedStreams()
        var positionsLoaded = false
        /// Things logged once (an ignored chunk drop per table, messages).
        var warned: Set<String> = []
        /// The target is the source database: a table may not be applied to itself.
        var isSourceDatabase = false
        /// Stage tables made on this connection, by target and columns.
        var stages: [String: String] = [:]
    }

    let config: PostgresSinkConfig
    let pipe: String
    let sinkName: String
    let source: SinkSourceInfo?
    let logger: Logger
    let target: Confined<Target>

    /// Events per planned part of a delivery of plain inserts (see `deliver`): a part's COPY is
    /// stored while the next part is planned. Parts cost a savepoint and a COPY each, so they
    /// pay off for large deliveries (a slow or distant target), not for every small one.
    let partEvents: Int

    public init(
        config: PostgresSinkConfig, pipe: String, sink: String, source: SinkSourceInfo?, logger: Logger,
        partEvents: Int = 8192
    ) {
        self.config = config
        self.pipe = pipe
        self.sinkName = sink
        self.source = source
        self.logger = logger
        self.partEvents = partEvents
        target = Confined(Target(), label: "pgbridge.postgres-sink")
    }

    public var description: String { "postgres:\(config.redactedURL) \(config.table)" }

    public func open() async throws {
        try await target.run { [self] state in
            _ = try connect(state)
        }
    }

    public func close() async {
        await target.release { state in
            state.connection = nil
            state.positionsLoaded = false
        }
    }

    public func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
        try await target.run { [self] state in
            do {
                return try deliver(batches, state)
            } catch let error as PostgresError {
                // The transaction is gone with the error, and with it what this delivery created
                // (stage tables, a created or altered target table): forget them. A broken
                // connection is replaced on the next delivery.
                if let connection = state.connection, !connection.isBroken { _ = try? connection.execute("ROLLBACK") }
                state.stages = [:]
                state.tables = [:]
                throw sinkError(error)
            }
        }
    }

    func sinkError(_ error: PostgresError) -> SinkError {
        switch error.sqlState {
        case "25006":
            return SinkError(
                sink: description,
                message:
                    "the target is read-only (a standby, or default_transaction_read_only): waiting for it to accept writes"
            )
        case "42501":
            return SinkError(
                sink: description,
                message:
                    "\(error.message): grant the target role INSERT, UPDATE, DELETE and TRUNCATE on the target tables")
        default:
            // A prerequisite (a loop, a positions table that cannot be made) does not fix itself.
            return SinkError(sink: description, message: "\(error.message)", retriable: error.code != .prerequisite)
        }
    }

    /// The connection (made, the positions table checked and the positions read on first use).
    func connect(_ state: Target) throws -> SQLConnection {
        if let connection = state.connection, !connection.isBroken { return SQLConnection(connection: connection) }
        // A new connection: the last delivery may have committed without its answer arriving,
        // so the recorded position is read again; temporary stage tables are gone.
        state.connection = nil
        state.tables = [:]
        state.stages = [:]
        state.positionsLoaded = false
        // Events are UTF-8: the target converts them to its own encoding.
        let connection = try PGConnection(
            url: config.url, mode: .normal, applicationName: "pgbridge \(pipe).\(sinkName)",
            extraOptions: "-c client_encoding=UTF8")
        let sql = SQLConnection(connection: connection)
        state.isSourceDatabase = try checkNotLoop(sql)
        if source != nil { try readPositions(sql, state) }
        state.connection = connection
        return sql
    }

    /// Refuses a target that is the source database itself with the identity table template:
    /// every applied change would be captured and applied again.
    func checkNotLoop(_ sql: SQLConnection) throws -> Bool {
        guard source?.postgres != nil else { return false }
        let same = try Self.isSameDatabase(sql, try sourceConnection())
        if same, config.table.description == "{schema}.{table}" {
            throw PostgresError(
                .prerequisite,
                "the target is the source database and table {schema}.{table}: every change would be applied to the table it came from and captured again (a loop). Point url at another database or set table to another name, e.g. replica.{table}",
                retriable: false)
        }
        return same
    }

    /// Whether two connections reach one database of one running server.
    static func isSameDatabase(_ a: SQLConnection, _ b: SQLConnection) throws -> Bool {
        let identity = "SELECT current_database(), pg_postmaster_start_time()::text, inet_server_port()"
        let left = try a.execute(identity)
        let right = try b.execute(identity)
        return (0..<3).allSatisfy { left.string(0, $0) == right.string(0, $0) }
    }

    /// A short connection to the source database, for its catalog (closed when released).
    func sourceConnection() throws -> SQLConnection {
        guard let source else {
            throw PostgresError(.prerequisite, "the source database is unknown to this sink", retriable: false)
        }
        guard let postgres = source.postgres else {
            throw PostgresError(
                .prerequisite,
                "the pipe reads \(source.streamID) messages, whose tables have no definition to copy: create the target table yourself (create_tables only makes the history table of mode: append with columns: json)",
                retriable: false)
        }
        return SQLConnection(
            connection: try PGConnection(url: postgres.url, mode: .normal, applicationName: "pgbridge schema"))
    }

    func readPositions(_ sql: SQLConnection, _ state: Target) throws {
        guard source != nil, !state.positionsLoaded else { return }
        let exists = try sql.execute("SELECT to_regclass('pgbridge.sink_positions') IS NOT NULL")
        if exists.string(0, 0) != "t" {
            do {
                try sql.execute("CREATE SCHEMA IF NOT EXISTS pgbridge")
                try sql.execute(SinkPositionsTable.create)
            } catch let error as PostgresError where error.sqlState == "42501" {
                throw PostgresError(
                    .prerequisite,
                    "cannot create pgbridge.sink_positions in the target (\(error.message)): run `pgbridge setup --url <target>` as a role that may create schemas, or grant CREATE on the target database",
                    retriable: false)
            }
        }
        let rows = try sql.execute(SinkPositionsTable.read, [pipe, sinkName])
        var applied = AppliedStreams()
        for row in 0..<rows.rowCount {
            guard let stream = rows.string(row, 0) else { continue }
            applied[stream] = AppliedPositions(
                position: rows.string(row, 1).flatMap(SinkPosition.init),
                pending: SQL.parseTextArray(rows.string(row, 2) ?? "{}"))
        }
        if !applied.streams.isEmpty {
            let positions = applied.streams.sorted { $0.key < $1.key }.map {
                "\($0.key) at \($0.value.position?.description ?? "nothing")"
            }
            logger.info(
                "postgres sink \(sinkName) resumes after what an earlier run applied: \(positions.prefix(20).joined(separator: ", "))\(positions.count > 20 ? ", …" : "")",
                metadata: ["pipe": "\(pipe)"])
        }
        state.applied = applied
        state.positionsLoaded = true
    }
}
