import BridgeCore
import BridgeRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import HTTPAPI

/// The pipe-management and operations routes in process (HummingbirdTesting's router client, no
/// binary, no database: PostgreSQL is an address where nothing listens): who may call them and
/// what each answers when the request is wrong.
@Suite("Pipe routes in process")
struct PipeRoutesTests {
    static let token = "routes-admin-token-0123456789"

    /// The API's router with a supervisor that has no pipes.
    func withRouter(
        adminToken: String? = Self.token, _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let api = APIConfig(adminToken: adminToken)
        let config = BridgeConfig(
            postgres: PostgresConfig(url: "postgresql://app@127.0.0.1:1/orders"), pipes: [], api: api)
        let logger = Logger(label: "test")
        let supervisor = PipeSupervisor(
            config: config, version: "test", store: nil, keepsRunning: false, logger: logger)
        try await supervisor.run()  // no pipes: returns once started
        let server = APIServer(
            config: api, postgres: config.postgres, supervisor: supervisor, registry: .init(), version: "9.9.9-test",
            logger: logger)
        try await Application(router: server.makeRouter()).test(.router, body)
    }

    var admin: HTTPFields { [.authorization: "Bearer \(Self.token)"] }

    @Test func healthAndTheDocumentNeedNoToken() async throws {
        try await withRouter { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"status":"ok","version":"9.9.9-test"}"#)
                #expect(response.headers[.contentType] == "application/json")
            }
            try await client.execute(uri: "/v1/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"openapi\""))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            }
        }
    }

    /// Every pipe route wants the admin token: none is 401, a wrong one is 401, and without
    /// `api.admin_token` pipe management is off (403) whatever the caller sends.
    @Test func pipeRoutesNeedTheAdminToken() async throws {
        let routes: [(String, HTTPRequest.Method)] = [
            ("/v1/pipes", .get), ("/v1/pipes", .post), ("/v1/pipes/orders", .get),
            ("/v1/pipes/orders/start", .post), ("/v1/pipes/orders/stop", .post), ("/v1/pipes/orders", .delete),
        ]
        try await withRouter { client in
            for (uri, method) in routes {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .unauthorized, "\(method) \(uri)")
                    #expect(String(buffer: response.body).contains("missing admin token"), "\(method) \(uri)")
                }
                try await client.execute(
                    uri: uri, method: method, headers: [.authorization: "Bearer \(Self.token.dropLast())x"]
                ) { response in
                    #expect(response.status == .unauthorized, "\(method) \(uri)")
                    #expect(String(buffer: response.body).contains("wrong admin token"), "\(method) \(uri)")
                }
            }
        }
        try await withRouter(adminToken: nil) { client in
            try await client.execute(uri: "/v1/pipes", method: .get, headers: admin) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("set api.admin_token"))
            }
        }
    }

    @Test func unknownPipesAreNotFound() async throws {
        try await withRouter { client in
            try await client.execute(uri: "/v1/pipes", method: .get, headers: admin) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"pipes\":[]"), "\(String(buffer: response.body))")
            }
            for (uri, method) in [
                ("/v1/pipes/nope", HTTPRequest.Method.get), ("/v1/pipes/nope/start", .post),
                ("/v1/pipes/nope/stop", .post), ("/v1/pipes/nope", .delete), ("/v1/pipes/nope/events", .get),
                ("/v1/pipes/..%2Fetc", .get),
            ] {
                try await client.execute(uri: uri, method: method, headers: admin) { response in
                    #expect(response.status == .notFound, "\(method) \(uri)")
                }
            }
        }
    }

    /// A definition the configuration parser refuses comes back as 422 with the parser's
    /// message (path and hint); what is not a JSON object is 400; a bad drop_slot is 400.
    @Test func badRequestsSayWhatIsWrong() async throws {
        try await withRouter { client in
            try await client.execute(
                uri: "/v1/pipes", method: .post, headers: admin, body: ByteBuffer(string: "[1, 2]")
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("expected a JSON object"))
            }
            let misspelled =
                #"{"name": "p", "source": {"tabels": ["public.t"]}, "sinks": [{"kind": "file", "path": "x"}]}"#
            try await client.execute(
                uri: "/v1/pipes", method: .post, headers: admin, body: ByteBuffer(string: misspelled)
            ) { response in
                let body = String(buffer: response.body)
                #expect(response.status == .unprocessableContent, "\(body)")
                #expect(body.contains("invalid_pipe") && body.contains("did you mean 'tables'?"), "\(body)")
            }
            try await client.execute(uri: "/v1/pipes/nope?drop_slot=maybe", method: .delete, headers: admin) {
                response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("drop_slot must be true or false"))
            }
        }
    }
}
