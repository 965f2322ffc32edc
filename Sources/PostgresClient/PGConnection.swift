import BridgeCore
import CLibPQ
import Glibc

/// Owns one libpq connection. Not thread-safe: it is used from one thread at a time (the
/// replication thread, or a blocking task), never shared concurrently.
public final class PGConnection {
    let handle: OpaquePointer
    /// The redacted target, for messages.
    public let target: String
    /// Statements prepared on this connection by name (pipelines prepare constant statements once).
    var preparedStatements: Set<String> = []
    /// Statements prepared by their text (`PipelinedStatement.cached`).
    var statementCache = StatementCache(capacity: 64)
    /// Cached statements that failed, deallocated before the next pipeline (once the failed
    /// transaction is rolled back).
    var staleStatements: [String] = []
    /// Set when the connection was left in a state it cannot be used from (a pipeline cut short).
    var abandoned = false

    public enum Mode {
        case normal
        /// `replication=database`: simple query protocol only.
        case replication
    }

    /// Session settings that make value text forms stable for the encoders.
    /// (standard_conforming_strings: the quoting of literals pgbridge builds relies on it;
    /// bytea_output: a role or database set to `escape` would otherwise change bytea's text.)
    public static let sessionOptions =
        "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3 -c standard_conforming_strings=on -c bytea_output=hex"

    /// Connects (blocking). `url` is a URI or key=value string; later parameters override it.
    /// - Parameter tcpUserTimeout: how long data sent may stay unacknowledged before the kernel
    ///   drops the connection (TCP_USER_TIMEOUT); keepalives alone do not fire while data is
    ///   in flight.
    public init(
        url: String, mode: Mode, applicationName: String = "pgbridge", connectTimeout: Int = 10,
        tcpUserTimeout: Duration = .seconds(60), extraOptions: String = ""
    ) throws {
        // TCP keepalives: a peer that vanished without closing the connection (failover, network
        // partition) is detected in about a minute instead of TCP's retransmission timeout.
        // Defaults first: keywords after `dbname` (the expanded URL) override the URL's own values.
        var keywords = [
            "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
            "connect_timeout", "dbname", "application_name", "options",
        ]
        // The URL's own `options` (e.g. `-c lc_messages=…`) are kept; pgbridge's session settings
        // come after them and win where they overlap.
        let parsed = ConnectionString(url)
        let options = [parsed?.value("options"), Self.sessionOptions, extraOptions].compactMap { $0 }
            .filter { !$0.isEmpty }.joined(separator: " ")
        var values = [
            "1", "30", "10", "3", String(tcpUserTimeout.components.seconds * 1000), String(connectTimeout), url,
            applicationName, options,
        ]
        if mode == .replication {
            keywords.append("replication")
            values.append("database")
        }
        let cKeywords = keywords.map { strdup($0) }
        let cValues = values.map { strdup($0) }
        defer {
            cKeywords.forEach { free($0) }
            cValues.forEach { free($0) }
        }
        var keywordPointers: [UnsafePointer<CChar>?] = cKeywords.map { UnsafePointer($0) } + [nil]
        var valuePointers: [UnsafePointer<CChar>?] = cValues.map { UnsafePointer($0) } + [nil]
        guard let connection = PQconnectdbParams(&keywordPointers, &valuePointers, 1) else {
            throw PostgresError(.connectionFailed, "cannot allocate a PostgreSQL connection")
        }
        self.handle = connection
        self.target = ConnectionString.redact(url)
        if PQstatus(connection) != CONNECTION_OK {
            let reason = ConnectionString.redact(
                String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines())
            throw PostgresError(
                .connectionFailed,
                "cannot connect to PostgreSQL at \(target): \(reason). Check postgres.url and that the server is running"
            )
        }
    }

    deinit { PQfinish(handle) }

    public var handleForNotifications: OpaquePointer { handle }

    public var errorMessage: String {
        ConnectionString.redact(String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines())
    }

    public var isBroken: Bool { abandoned || PQstatus(handle) != CONNECTION_OK }

    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// `text` as a quoted SQL literal, escaped by libpq for this connection's encoding.
    public func escapeLiteral(_ text: String) throws -> String {
        guard let escaped = PQescapeLiteral(handle, text, text.utf8.count) else {
            throw PostgresError(.queryFailed, "cannot quote a value: \(errorMessage)")
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    public var socket: Int32 { PQsocket(handle) }

    /// Runs one statement (simple protocol) and returns its result; errors become PostgresError.
    @discardableResult
    public func execute(_ sql: String) throws -> PGResult {
        guard let raw = PQexec(handle, sql) else {
            throw PostgresError(.connectionFailed, "lost the connection to PostgreSQL at \(target): \(errorMessage)")
        }
        return try check(PGResult(raw))
    }

    /// Runs one statement with text parameters (normal connections only).
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?]) throws -> PGResult {
        let cValues = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { cValues.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cValues.map { $0.map { UnsafePointer($0) } }
        guard let raw = PQexecParams(handle, sql, Int32(parameters.count), nil, &pointers, nil, nil, 0) else {
            throw PostgresError(.connectionFailed, "lost the connection to PostgreSQL at \(target): \(errorMessage)")
        }
        return try check(PGResult(raw))
    }

    func check(_ result: PGResult) throws -> PGResult {
        switch result.status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_BOTH, PGRES_COPY_OUT, PGRES_COPY_IN:
            return result
        default:
            if isBroken {
                throw PostgresError(
                    .connectionFailed, "lost the connection to PostgreSQL at \(target): \(errorMessage)")
            }
            let fields = result.errorFields
            let state = fields.sqlState
            var error = PostgresError(
                .queryFailed, PGResult.joinedMessage(fields), sqlState: state,
                retriable: PostgresError.isTransient(sqlState: state))
            error.primaryMessage = fields.primary
            error.detail = fields.detail
            error.hint = fields.hint
            throw error
        }
    }

    // MARK: - COPY BOTH (replication stream)

    public enum CopyData {
        /// One message; the pointer is valid until `freeCopyBuffer` is called.
        case message(UnsafeMutablePointer<CChar>, Int)
        /// Nothing buffered yet: wait for the socket.
        case wouldBlock
        /// The server ended the COPY.
        case done
    }

    public func setNonBlocking() { PQsetnonblocking(handle, 1) }

    /// Reads available bytes from the socket into libpq's buffer.
    public func consumeInput() throws {
        if PQconsumeInput(handle) == 0 {
            throw PostgresError(.connectionFailed, "lost the replication connection to \(target): \(errorMessage)")
        }
    }

    public func getCopyData() throws -> CopyData {
        var buffer: UnsafeMutablePointer<CChar>?
        let n = PQgetCopyData(handle, &buffer, 1)
        if n > 0, let buffer { return .message(buffer, Int(n)) }
        if n == 0 { return .wouldBlock }
        if n == -1 {
            // COPY finished: collect the final result to surface any error.
            var failure: String?
            while let raw = PQgetResult(handle) {
                let result = PGResult(raw)
                if result.status != PGRES_COMMAND_OK && result.status != PGRES_COPY_BOTH {
                    failure = result.errorField.message
                }
            }
            if let failure {
                throw PostgresError(.connectionFailed, "the server ended replication: \(failure)")
            }
            return .done
        }
        throw PostgresError(.connectionFailed, "lost the replication connection to \(target): \(errorMessage)")
    }

    public func freeCopyBuffer(_ pointer: UnsafeMutablePointer<CChar>) { PQfreemem(pointer) }

    /// Queues bytes to the server and tries to flush them (non-blocking).
    public func putCopyData(_ bytes: [UInt8]) throws {
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
        }
        guard status == 1 else {
            throw PostgresError(
                .connectionFailed, "cannot send to the replication connection at \(target): \(errorMessage)")
        }
        try flush()
    }

    /// Returns true when everything was sent, false when the socket must become writable first.
    @discardableResult
    public func flush() throws -> Bool {
        let status = PQflush(handle)
        if status < 0 {
            throw PostgresError(
                .connectionFailed, "cannot send to the replication connection at \(target): \(errorMessage)")
        }
        return status == 0
    }

    public func endCopy() {
        _ = PQputCopyEnd(handle, nil)
        _ = PQflush(handle)
    }
}

extension PGConnection {
    public struct Notification {
        public let channel: String
        public let payload: [UInt8]
        public let backendPID: Int32
    }

    /// Reads the socket and returns pending notifications (LISTEN).
    public func notifications() throws -> [Notification] {
        try consumeInput()
        var result: [Notification] = []
        while let notify = PQnotifies(handleForNotifications) {
            let payload =
                notify.pointee.extra.map { pointer in
                    Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
                } ?? []
            result.append(
                Notification(
                    channel: String(cString: notify.pointee.relname), payload: payload,
                    backendPID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        return result
    }

    /// Waits up to `timeout` for the socket to become readable.
    public func waitReadable(timeout: Duration) {
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, Int32(max(1, timeout.seconds * 1000)))
    }
}
