import Hummingbird
import HummingbirdTesting
import Testing

@testable import HTTPAPI

@Suite("Unexpected errors")
struct ErrorMiddlewareTests {
    struct Unexpected: Error, CustomStringConvertible {
        var description: String { "cannot connect to PostgreSQL at postgresql://app:***@db.internal:5432/orders" }
    }

    /// The detail of an unexpected error (hosts, users, databases, files) goes to the log; the
    /// caller gets a generic message with a request id to find it there.
    @Test func unexpectedErrorsAnswerAGenericMessageWithARequestID() async throws {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("/boom") { _, _ -> String in throw Unexpected() }
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/boom", method: .get) { response in
                #expect(response.status == .internalServerError)
                let body = String(buffer: response.body)
                let id = try #require(response.headers.first { $0.name.rawName == "X-Request-Id" }?.value)
                #expect(body.contains("internal error (request id \(id))"), "\(body)")
                for secret in ["db.internal", "app", "orders", "5432"] {
                    #expect(!body.contains(secret), "\(secret) in \(body)")
                }
            }
        }
    }
}
