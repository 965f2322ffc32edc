import BridgeCore
import BridgeRuntime
import Foundation
import Logging
import OpenAPIKit
import Testing

@testable import HTTPAPI

@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    func server() -> APIServer {
        let config = BridgeConfig(
            postgres: PostgresConfig(url: "postgresql://x@127.0.0.1:1/x"), pipes: [], api: APIConfig())
        let logger = Logger(label: "test")
        let supervisor = PipeSupervisor(config: config, version: "test", store: nil, keepsRunning: true, logger: logger)
        return APIServer(
            config: APIConfig(), postgres: config.postgres, supervisor: supervisor, registry: .init(), version: "test",
            logger: logger)
    }

    /// The document is valid OpenAPI 3.1 and describes exactly the routes the server registers.
    @Test func documentValidatesAndListsEveryRoute() throws {
        let document = try JSONDecoder().decode(OpenAPI.Document.self, from: Data(OpenAPIDocument.json.utf8))
        try document.validate()
        var documented: Set<String> = []
        for route in document.routes {
            for endpoint in route.pathItem.endpoints {
                documented.insert("\(endpoint.method.rawValue) \(route.path.rawValue)")
                #expect(endpoint.operation.operationId != nil, "\(route.path.rawValue) needs an operationId")
            }
        }
        let registered = Set(server().makeRouter().routes.map { "\($0.method.rawValue) \($0.path.description)" })
        #expect(registered.count >= 11)
        #expect(
            documented == registered,
            "only documented: \(documented.subtracting(registered)); only served: \(registered.subtracting(documented))"
        )
    }

    /// Secrets in a posted pipe never come back.
    @Test func definitionsAreRedacted() throws {
        let redacted = try #require(
            DefinitionRedaction.redact(
                #"""
                {"name": "p", "sinks": [
                  {"kind": "http", "url": "https://hooks.example.com/x", "headers": {"Authorization": "Bearer abc", "X-Env": "${TOKEN}"},
                   "oauth2": {"client_key": "id", "client_secret": "s3", "token_url": "https://auth/token"}},
                  {"kind": "redis", "url": "redis://:hunter2@127.0.0.1:6379/0"},
                  {"kind": "http", "url": "https://hooks.slack.com/services/T000/B000/XXXX"},
                  {"kind": "http", "url": "https://example.com/hook?sig=abc"},
                  {"kind": "kafka", "brokers": "k:9092", "sasl": "plain", "username": "u", "password": "pw",
                   "properties": {"ssl.key.password": "kp", "ssl.key.pem": "-----BEGIN KEY", "linger.ms": "5"}}]}
                """#) as? [String: Any])
        let text = String(
            decoding: try JSONSerialization.data(withJSONObject: redacted, options: [.withoutEscapingSlashes]),
            as: UTF8.self)
        for secret in [
            "Bearer abc", "\"s3\"", "hunter2", "\"pw\"", "\"kp\"", "T000/B000/XXXX", "sig=abc", "-----BEGIN",
        ] {
            #expect(!text.contains(secret), "\(secret) leaked: \(text)")
        }
        for kept in [
            "${TOKEN}", "https://auth/…", "https://hooks.example.com/…", "\"linger.ms\":\"5\"", "\"username\":\"u\"",
        ] {
            #expect(text.contains(kept), "\(kept) missing: \(text)")
        }
    }
}
