import BridgeCore
import CLibPQ

/// One PostgreSQL connection for request/response work (the REST proxy, the table dead-letter
/// sink), used from its own serial queue so that libpq's blocking calls never hold a thread of the cooperative pool.
public final class SQLSession: Sendable {
    /// The session's connection, confined to its queue; nil until first used or after a reset.
    final class State {
        var connection: PGConnection?
    }

    private let confined: Confined<State>
    private let postgres: PostgresConfig
    private let applicationName: String

    public init(postgres: PostgresConfig, label: String, applicationName: String = "pgbridge-api") {
        self.postgres = postgres
        self.applicationName = applicationName
        confined = Confined(State(), label: label)
    }

    /// Runs `body` on the session's queue with a connected connection (reconnecting if the
    /// previous one broke).
    public func run<T: Sendable>(_ body: @escaping @Sendable (SQLConnection) throws -> T) async throws -> T {
        try await confined.run { [postgres, applicationName] state in
            if state.connection == nil || state.connection!.isBroken {
                state.connection = try PGConnection(url: postgres.url, mode: .normal, applicationName: applicationName)
            }
            return try body(SQLConnection(connection: state.connection!))
        }
    }

    /// After an error that may have left a transaction or cursor open: rolls it back, keeping
    /// the connection (and the statements prepared on it); drops the connection when it is
    /// broken or the rollback fails.
    public func reset() {
        confined.enqueue { state in
            guard let connection = state.connection, !connection.isBroken else {
                state.connection = nil
                return
            }
            do {
                // Session advisory locks a failed request took are released as a reconnect would.
                try connection.execute("ROLLBACK")
                try connection.execute("SELECT pg_catalog.pg_advisory_unlock_all()")
            } catch {
                state.connection = nil
            }
        }
    }

    /// Drops the connection.
    public func close() {
        confined.enqueue { $0.connection = nil }
    }
}

/// The connection as the body of `SQLSession.run` sees it.
public struct SQLConnection {
    public let connection: PGConnection

    /// Also for a connection used directly by its owner (a sink's confined connection).
    public init(connection: PGConnection) { self.connection = connection }

    /// Runs one statement: with parameters through the extended protocol (text values, types
    /// inferred by the server), else through the simple protocol.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) throws -> SQLResult {
        SQLResult(
            result: parameters.isEmpty ? try connection.execute(sql) : try connection.execute(sql, parameters))
    }
}

extension SQLConnection {
    /// Runs the statements in one pipeline (one round trip) and returns their results in order;
    /// a failed statement throws `PGConnection.PipelineFailure` naming it.
    public func pipeline(_ statements: [PGConnection.PipelinedStatement]) throws -> [SQLResult] {
        try connection.pipeline(statements).map { SQLResult(result: $0) }
    }

    /// `text` as a quoted SQL literal (libpq's escaping), for statements that cannot take
    /// parameters (several statements in one simple-protocol message).
    public func literal(_ text: String) throws -> String { try connection.escapeLiteral(text) }
}

/// A statement's rows as text.
public struct SQLResult: @unchecked Sendable {
    // @unchecked Sendable: the result is immutable once received.
    public let result: PGResult

    public var rowCount: Int { result.rowCount }
    public var columnCount: Int { result.columnCount }

    public func string(_ row: Int, _ column: Int) -> String? { result.string(row, column) }

    public func columnName(_ column: Int) -> String {
        PQfname(result.handle, Int32(column)).map { String(cString: $0) } ?? ""
    }

    /// The affected-row count of INSERT/UPDATE/DELETE.
    public var affectedRows: Int { PQcmdTuples(result.handle).flatMap { Int(String(cString: $0)) } ?? 0 }

    /// Appends the value's text bytes (nothing for NULL); true when it was not NULL.
    @discardableResult
    public func appendValue(_ row: Int, _ column: Int, into out: inout [UInt8]) -> Bool {
        result.withValue(row, column) { bytes in
            guard let bytes else { return false }
            out.append(contentsOf: bytes)
            return true
        }
    }
}
