/// The HTTP API (`api:` section): health, metrics, pipe management, REST proxy, pull.
public struct APIConfig: Sendable {
    public var host: String
    /// 0 = any free port (tests; the chosen port is logged).
    public var port: Int
    /// Bearer token for `/v1/pipes` management; nil = management routes are refused.
    public var adminToken: String?
    /// How REST-proxy tokens are verified; nil = no token is accepted (anonymous reads only).
    public var jwt: JWTKeyConfig?
    /// Role for requests without a token (reads only unless `anonymousWrites`); nil = refused.
    public var anonymousRole: String?
    /// Lets requests without a token write as `anonymousRole` (off by default).
    public var anonymousWrites: Bool
    /// Recent events each pipe keeps for the pull API and SSE (0 = none).
    public var bufferEvents: Int
    /// PostgreSQL connections the REST proxy uses at most.
    public var poolSize: Int
    /// `statement_timeout` of REST proxy requests.
    public var statementTimeout: Duration
    /// Largest request body accepted.
    public var maxBodyBytes: Int
    /// Bytes each pipe's recent-event buffer holds at most (besides `bufferEvents`).
    public var bufferBytes: Int = 64 << 20
    /// Open HTTP connections at most; more wait in the listen backlog.
    public var maxConnections: Int = 512
    /// A keep-alive connection with no request for this long is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// A response whose written data has not reached a client for this long is abandoned and its
    /// connection closed (a client that stopped reading must not hold a REST-proxy session).
    public var writeTimeout: Duration = .seconds(30)
    /// Refuse tokens without an `exp` claim (they would never expire).
    public var jwtRequireExp: Bool = false
    /// When set, a token's `aud` must contain it.
    public var jwtAudience: String?
    /// When set, a token's `iss` must equal it.
    public var jwtIssuer: String?
    /// Where the PostgREST-compatible REST proxy is mounted (`/v1/tables` always works too).
    public var restPath: String = "/v1/tables"
    /// Schemas `Accept-Profile` / `Content-Profile` may pick; the first is the default.
    public var restSchemas: [String] = ["public"]
    /// Schemas the REST proxy never serves: pgbridge's own objects, the system catalogs and
    /// TimescaleDB's internals.
    public static func isHiddenSchema(_ schema: String) -> Bool {
        ["pgbridge", "pg_catalog", "information_schema", "pg_toast"].contains(schema)
            || schema.hasPrefix("_timescaledb")
            || schema.hasPrefix("pg_temp") || schema.hasPrefix("pg_toast_temp")
    }
    /// Honour `Prefer: tx=rollback` (requests that write and roll back, e.g. for tests).
    public var restAllowTransactionOverride = false
    /// The pipe whose buffer live queries stream (default: the replication pipe capturing the table).
    public var livePipe: String?
    /// Where a token's role is: a JSON path into its claims (`.role`, `.app_metadata.role`).
    public var jwtRoleClaim = ".role"
    /// A function (`schema.name`) called at the start of every REST request's transaction,
    /// after the role and the `request.*` settings (PostgREST's `db-pre-request`).
    public var restPreRequest: (schema: String, name: String)?

    public init(
        host: String = "127.0.0.1", port: Int = 8080, adminToken: String? = nil, jwt: JWTKeyConfig? = nil,
        anonymousRole: String? = nil, anonymousWrites: Bool = false, bufferEvents: Int = 10_000, poolSize: Int = 8,
        statementTimeout: Duration = .seconds(30), maxBodyBytes: Int = 16 << 20
    ) {
        self.host = host
        self.port = port
        self.adminToken = adminToken
        self.jwt = jwt
        self.anonymousRole = anonymousRole
        self.anonymousWrites = anonymousWrites
        self.bufferEvents = bufferEvents
        self.poolSize = poolSize
        self.statementTimeout = statementTimeout
        self.maxBodyBytes = maxBodyBytes
    }
}

/// The key REST-proxy JWTs are signed with.
public enum JWTKeyConfig: Sendable {
    /// HS256 with a shared secret (at least 32 bytes).
    case hs256(secret: String)
    /// RS256 with the PEM public key of the issuer.
    case rs256(publicKeyPEM: String)
}

extension APIConfig: CustomStringConvertible {
    /// A summary without secrets.
    public var description: String {
        let jwtKind: String
        switch jwt {
        case .hs256: jwtKind = "HS256"
        case .rs256: jwtKind = "RS256"
        case nil: jwtKind = "none"
        }
        return
            "listen \(host):\(port), admin token \(adminToken == nil ? "unset" : "set"), JWT \(jwtKind), anonymous role \(anonymousRole ?? "none")"
    }
}
