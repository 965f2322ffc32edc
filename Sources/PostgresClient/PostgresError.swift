import BridgeCore

/// Every failure of the PostgreSQL source, with what to do about it.
///
/// Messages never contain connection passwords (URLs are redacted before they get here).
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The server could not be reached or the connection broke.
        case connectionFailed
        /// A statement failed; `sqlState` says why.
        case queryFailed
        /// The database is not ready for capture (wal_level, missing table, replica identity…).
        case prerequisite
        /// The replication slot is in use by another process.
        case slotBusy
        /// The slot lost required WAL (`wal_status = lost`) and cannot resume.
        case slotInvalidated
        /// The slot existed (pgbridge confirmed positions from it) but is gone now.
        case slotMissing
        /// The server sent bytes we could not decode.
        case protocolViolation
        /// The sinks took nothing for too long while the stream had stopped reading: the
        /// replication connection is closed until they catch up.
        case readPaused
    }

    public var code: Code
    public var message: String
    public var sqlState: String?
    /// Worth retrying after a pause (connection problems, server restarts).
    public var isRetriable: Bool
    /// The server's own parts of a refused statement (`message` joins them).
    public var primaryMessage: String?
    public var detail: String?
    public var hint: String?

    public init(_ code: Code, _ message: String, sqlState: String? = nil, retriable: Bool? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.isRetriable = retriable ?? (code == .connectionFailed)
    }

    public var description: String { message }

    /// Serialisation failures and deadlocks (class 40), connection exceptions (08), cancelled
    /// statements, lock timeouts, a read-only server after failover, server shutdown or
    /// start-up: trying again later may succeed.
    public static func isTransient(sqlState: String?) -> Bool {
        guard let state = sqlState else { return false }
        return state.hasPrefix("40") || state.hasPrefix("08")
            || ["57014", "55P03", "25006", "57P01", "57P03"].contains(state)
    }
}
extension PostgresError: RetriableError {}
