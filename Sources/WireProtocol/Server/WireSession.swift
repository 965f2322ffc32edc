import BridgeCore
import Crypto
import Logging
import NIOCore
import Synchronization

/// Server parameters reported at start-up (ParameterStatus) and by SHOW.
enum WireSessionDefaults {
    static let parameters: [String: String] = [
        "server_version": "15.0",
        "server_version_num": "150000",
        "server_encoding": "UTF8",
        "client_encoding": "UTF8",
        "DateStyle": "ISO, MDY",
        "TimeZone": "UTC",
        "IntervalStyle": "postgres",
        "integer_datetimes": "on",
        "standard_conforming_strings": "on",
        "is_superuser": "off",
    ]
}

/// What a connection does after a message was handled.
enum SessionAction {
    case proceed
    /// Send the output, then close the connection.
    case close
}

/// One client connection's protocol state: authentication, transaction status, prepared
/// statements, portals and cursors. Used by one task only (the connection's).
final class WireSession {
    enum Phase {
        case awaitingStartup
        case awaitingSASLInitial(user: String, exchange: SCRAMServerExchange, known: Bool)
        case awaitingSASLFinal(user: String, exchange: SCRAMServerExchange, known: Bool)
        case ready
    }

    enum TransactionStatus: UInt8 {
        case idle = 73  // I
        case inBlock = 84  // T
        case failed = 69  // E
    }

    struct PreparedStatement {
        var sql: String
        /// nil: an empty query.
        var statement: SQLStatement?
        var parameterTypes: [SQLType]
    }

    struct Portal {
        var statement: PreparedStatement
        var parameters: [SQLValue]
        var execution: PortalExecution?
    }

    /// A result being produced across Execute messages.
    enum PortalExecution {
        case rows(columns: [ResultColumn], source: RowSource, tag: String)
        case done(tag: String)
        /// An empty query string: each Execute answers EmptyQueryResponse.
        case empty
    }

    let context: WireServerContext
    let key: BackendKey
    var phase = Phase.awaitingStartup
    var status = TransactionStatus.idle
    var savepoints: [String] = []
    var statements: [String: PreparedStatement] = [:]
    var portals: [String: Portal] = [:]
    var cursors: [String: Cursor] = [:]
    /// After an error in an extended-protocol sequence: ignore messages until Sync.
    var discardingUntilSync = false
    var user = ""
    /// The tables this session's user may use (set at login).
    var catalog = GrantedCatalog(base: EmptyCatalog(), grants: WireGrants(read: [], write: []))
    var logger: Logger
    /// Writes output early (set by the connection): large results are sent as they are made,
    /// not held in memory whole.
    var flush: ((ByteBuffer) async throws -> Void)?
    static let flushThreshold = 256 << 10

    /// Sends what `output` holds once it is large.
    func flushIfLarge(_ output: inout ByteBuffer) async throws {
        guard output.readableBytes >= Self.flushThreshold, let flush else { return }
        try await flush(output)
        output.clear()
    }

    struct Cursor {
        var execution: SelectExecution
        /// Savepoints open when it was declared (ROLLBACK TO an earlier one closes it).
        var depth: Int
    }

    init(context: WireServerContext, logger: Logger) {
        self.context = context
        self.key = context.registry.register()
        self.logger = logger
    }

    var isLoggedIn: Bool {
        if case .ready = phase { return true }
        return false
    }

    /// Frees what the session holds; called once when the connection ends.
    func end() async {
        await closeAllCursors()
        await dropAllPortals()
        context.registry.unregister(key)
    }

    /// Handles one message and writes the answer into `output`.
    func handle(_ message: FrontendMessage, output: inout ByteBuffer) async -> SessionAction {
        switch phase {
        case .ready:
            break
        default:
            return handleStartup(message, output: &output)
        }
        key.clearCancel()
        if discardingUntilSync {
            switch message {
            case .sync: discardingUntilSync = false
            case .terminate: return .close
            default: return .proceed
            }
        }
        switch message {
        case .query(let sql):
            await simpleQuery(sql, output: &output)
        case .parse(let name, let query, let types):
            extended(output: &output) { session, out throws(WireError) in try session.parse(name, query, types, &out) }
        case .bind(let portal, let statement, let formats, let parameters, let resultFormats):
            // A new Bind replaces the unnamed portal: its scan ends.
            if portal.isEmpty { await dropPortal("") }
            extended(output: &output) { session, out throws(WireError) in
                try session.bind(portal, statement, formats, parameters, resultFormats, &out)
            }
        case .describe(let kind, let name):
            await extendedAsync(output: &output) { session, out in try await session.describe(kind, name, &out) }
        case .execute(let portal, let maxRows):
            await extendedAsync(output: &output) { session, out in try await session.execute(portal, maxRows, &out) }
        case .close(let kind, let name):
            if kind == UInt8(ascii: "S") {
                statements[name] = nil
            } else {
                await dropPortal(name)
            }
            output.writeEmpty("3")
        case .sync:
            if status == .idle { await dropAllPortals() }
            output.writeReadyForQuery(status.rawValue)
        case .flush:
            break
        case .terminate:
            return .close
        case .authentication:
            output.writeError(WireError("08P01", "unexpected password message"))
            return .close
        case .startup, .sslRequest, .gssEncryptionRequest, .cancel:
            output.writeError(WireError("08P01", "unexpected startup packet after start-up"))
            return .close
        case .unsupported(let type):
            output.writeError(
                WireError(
                    "08P01", "unsupported frontend message type \(FrontendDecoder.describe(type))",
                    hint: "COPY and function calls are not served by pgbridge"))
            if status == .inBlock { status = .failed }
            output.writeReadyForQuery(status.rawValue)
        }
        return .proceed
    }

    /// Runs one step of an extended-protocol sequence; an error is reported once, and what
    /// follows is discarded until Sync.
    private func extended(
        output: inout ByteBuffer, _ body: (WireSession, inout ByteBuffer) throws(WireError) -> Void
    ) {
        do throws(WireError) {
            try body(self, &output)
        } catch {
            fail(error, output: &output)
            discardingUntilSync = true
        }
    }

    private func extendedAsync(
        output: inout ByteBuffer, _ body: (WireSession, inout ByteBuffer) async throws -> Void
    ) async {
        do {
            try await body(self, &output)
        } catch {
            fail(WireSession.wireError(error), output: &output)
            discardingUntilSync = true
        }
    }

    /// Reports an error; inside a transaction block, the transaction is then failed.
    func fail(_ error: WireError, output: inout ByteBuffer) {
        output.writeError(error)
        if status == .inBlock { status = .failed }
    }

    /// Maps any error to what the client sees (SQLSTATE and message).
    static func wireError(_ error: any Error) -> WireError {
        if let error = error as? WireError { return error }
        if error is CancellationError { return WireError("57014", "canceling statement due to user request") }
        return WireError("58000", String(describing: error))
    }

    /// Drops a portal, closing its scan (a Kafka consumer, …) first.
    func dropPortal(_ name: String) async {
        if case .rows(_, let source, _) = portals.removeValue(forKey: name)?.execution { await source.close() }
    }

    func dropAllPortals() async {
        for name in Array(portals.keys) { await dropPortal(name) }
    }

    func closeAllCursors() async {
        let open = cursors.values
        cursors.removeAll()
        for cursor in open { await cursor.execution.close() }
    }
}

/// What sessions share: the tables, the users, and the registry of running sessions.
public final class WireServerContext: Sendable {
    let catalog: any ForeignCatalog
    let users: [String: SCRAMCredentials]
    /// Per-user grants; users without an entry get `WireGrants.unlisted`.
    let grants: [String: WireGrants]
    /// For unknown users' decoy salts (see `decoy(for:)`).
    private let decoySecret: SymmetricKey
    let registry = SessionRegistry()
    /// The most bytes a query may hold at once: the rows an ORDER BY sorts, or a table that
    /// must read everything first (`wire.max_scan_bytes`).
    public let maxScanBytes: Int

    public init(
        catalog: any ForeignCatalog, users: [String: SCRAMCredentials], grants: [String: WireGrants] = [:],
        maxScanBytes: Int = 256 << 20
    ) {
        self.maxScanBytes = maxScanBytes
        self.catalog = catalog
        self.users = users
        self.grants = grants
        decoySecret = SymmetricKey(size: .bits256)
    }

    /// Credentials for an unknown user: the exchange runs to its end and fails, as PostgreSQL
    /// does. The salt is an HMAC of the name under a secret of this process, so it is the same
    /// on every attempt for one name and different between names, like real users' salts: a
    /// client cannot tell unknown users from wrong passwords.
    func decoy(for user: String) -> SCRAMCredentials {
        let salt = Array(HMAC<SHA256>.authenticationCode(for: Array(user.utf8), using: decoySecret).prefix(16))
        let keys = Array(HMAC<SHA256>.authenticationCode(for: salt, using: decoySecret))
        return SCRAMCredentials(salt: salt, iterations: 4096, storedKey: keys, serverKey: keys.reversed())
    }

    func catalog(for user: String) -> GrantedCatalog {
        GrantedCatalog(base: catalog, grants: grants[user] ?? .unlisted)
    }
}

/// No tables (a session before login).
struct EmptyCatalog: ForeignCatalog {
    var schemas: [String] { [] }
    func tables(in schema: String) async -> [any ForeignTable] { [] }
    func table(_ name: TableName) async -> (any ForeignTable)? { nil }
}

/// BackendKeyData of one session, and its cancel flag.
final class BackendKey: Sendable {
    let processID: Int32
    let secret: Int32
    private let cancelled = Atomic(false)

    init(processID: Int32, secret: Int32) {
        self.processID = processID
        self.secret = secret
    }

    func cancel() { cancelled.store(true, ordering: .relaxed) }
    func clearCancel() { cancelled.store(false, ordering: .relaxed) }
    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
}

/// The sessions that a CancelRequest may name.
final class SessionRegistry: Sendable {
    private let sessions = Mutex<[Int32: BackendKey]>([:])

    func register() -> BackendKey {
        sessions.withLock { sessions in
            var processID: Int32
            repeat { processID = Int32.random(in: 1_000...Int32.max) } while sessions[processID] != nil
            let key = BackendKey(processID: processID, secret: Int32.random(in: Int32.min...Int32.max))
            sessions[processID] = key
            return key
        }
    }

    func unregister(_ key: BackendKey) {
        _ = sessions.withLock { $0.removeValue(forKey: key.processID) }
    }

    /// Cancels the running statement of the session with this key (a wrong secret is ignored).
    func cancel(processID: Int32, secret: Int32) -> Bool {
        guard let key = sessions.withLock({ $0[processID] }), key.secret == secret else { return false }
        key.cancel()
        return true
    }
}
