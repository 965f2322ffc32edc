import BridgeCore
import BridgeRuntime
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import PostgresClient
import Prometheus
import ServiceLifecycle

/// The HTTP API (`api.listen`): health, metrics, pipe management, the pull API and SSE.
/// See docs/http-api.md; the routes are listed in `/v1/openapi.json`.
public struct APIServer: Service {
    let config: APIConfig
    let postgres: PostgresConfig
    let supervisor: PipeSupervisor
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    let version: String
    let pool: SQLPool
    let catalog: TableCatalog
    /// `/readyz`, `/metrics` and pipe statuses read PostgreSQL through it (one connection, cached).
    let monitor: DatabaseMonitor

    public init(
        config: APIConfig, postgres: PostgresConfig, supervisor: PipeSupervisor, registry: PrometheusCollectorRegistry,
        version: String, logger: Logger
    ) {
        self.config = config
        self.postgres = postgres
        self.supervisor = supervisor
        self.registry = registry
        self.version = version
        self.logger = logger
        self.pool = SQLPool(postgres: postgres, size: config.poolSize)
        self.catalog = TableCatalog(pool: pool)
        self.monitor = DatabaseMonitor(postgres: postgres)
    }

    public func run() async throws {
        let logger = logger
        let auth = try await ProxyAuth.make(config)
        let writeTimeout = TimeAmount.nanoseconds(config.writeTimeout.nanosecondCount)
        let app = Application(
            router: makeRouter(auth: auth),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [WriteTimeoutHandler(timeout: writeTimeout)],
                    idleTimeout: .nanoseconds(config.idleTimeout.nanosecondCount))),
            configuration: .init(
                address: .hostname(config.host, port: config.port), serverName: "pgbridge/\(version)",
                availableConnectionsDelegate: MaximumAvailableConnections(config.maxConnections)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info(
                    "HTTP API listening", metadata: ["address": "\(channel.localAddress?.ipAddress ?? "?"):\(port)"])
            },
            logger: logger)
        try await app.run()
    }

    func makeRouter(auth: ProxyAuth = ProxyAuth(keys: nil, anonymousRole: nil, anonymousWrites: false))
        -> Router<BasicRequestContext>
    {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        addOperationRoutes(to: router)
        addPipeRoutes(to: router)
        addEventRoutes(to: router)
        addTableRoutes(
            to: router,
            tables: TableRoutes(
                pool: pool, catalog: catalog, auth: auth, statementTimeout: config.statementTimeout,
                maxBodyBytes: config.maxBodyBytes, commitLSN: CommitLSNLookup(logger: logger),
                schemas: config.restSchemas, allowTransactionOverride: config.restAllowTransactionOverride,
                preRequest: config.restPreRequest))
        router.get("/v1/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        return router
    }

    /// `Authorization: Bearer <api.admin_token>`, compared in constant time.
    func requireAdmin(_ request: Request) throws {
        guard let expected = config.adminToken else {
            throw APIError.forbidden("pipe management is disabled: set api.admin_token in the configuration")
        }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw APIError.unauthorized("missing admin token: send Authorization: Bearer <api.admin_token>")
        }
        guard ConstantTime.equals(Array(header.utf8.dropFirst(7)), Array(expected.utf8)) else {
            throw APIError.unauthorized("wrong admin token")
        }
    }
}
