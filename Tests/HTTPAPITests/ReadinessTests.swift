import BridgeCore
import BridgeRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import HTTPAPI

/// `/readyz` when PostgreSQL does not answer (nothing listens on port 1): 503, with the reason
/// only for the admin token.
@Suite("Readiness")
struct ReadinessTests {
    static let token = "readiness-admin-token-0123"

    @Test func anUnreachableDatabaseIsNotReadyAndSaysWhyToTheAdmin() async throws {
        let api = APIConfig(adminToken: Self.token)
        let config = BridgeConfig(
            postgres: PostgresConfig(url: "postgresql://app:hunter2-secret@127.0.0.1:1/orders"), pipes: [], api: api)
        let logger = Logger(label: "test")
        let supervisor = PipeSupervisor(
            config: config, version: "test", store: nil, keepsRunning: false, logger: logger)
        try await supervisor.run()  // no pipes: returns once started (statuses wait for that)
        let server = APIServer(
            config: api, postgres: config.postgres, supervisor: supervisor, registry: .init(), version: "test",
            logger: logger)
        try await Application(router: server.makeRouter()).test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = String(buffer: response.body)
                #expect(body.contains("PostgreSQL is not reachable"), "\(body)")
                #expect(!body.contains("127.0.0.1") && !body.contains("orders"), "no detail without the token: \(body)")
            }
            try await client.execute(
                uri: "/readyz", method: .get, headers: [.authorization: "Bearer \(Self.token)"]
            ) { response in
                #expect(response.status == .serviceUnavailable)
                let body = String(buffer: response.body)
                #expect(body.contains("PostgreSQL is not reachable: cannot connect to PostgreSQL at "), "\(body)")
                #expect(!body.contains("hunter2-secret"), "the password stays out: \(body)")
            }
        }
    }
}
