import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A local webhook receiver (Hummingbird) that records requests and fails on demand: N times
/// with a status, for bodies containing a marker, or without a valid OAuth2 token.
final class HookServer: Sendable {
    struct Received: Sendable {
        var headers: [String: String]
        var body: String
        var status: Int
    }

    struct Behaviour: Sendable {
        /// The next `failures` requests get `failureStatus` (and `Retry-After` when set).
        var failures = 0
        var failureStatus = 503
        var retryAfter: String?
        /// Bodies containing this get 400.
        var rejectMarker: String?
        /// Requests need `Authorization: Bearer <a token issued by /token>`.
        var requireToken = false
        var clientID = "pgbridge"
        var clientSecret = "s3cret"
    }

    private struct State {
        var behaviour: Behaviour
        var received: [Received] = []
        var tokens: [String] = []
        var tokenRequests: [String] = []
    }

    private let state: Mutex<State>
    private let task: Mutex<Task<Void, any Error>?> = Mutex(nil)
    let port: Int

    var received: [Received] { state.withLock { $0.received } }

    /// Refuses the next `count` requests from now on (0: accepts again).
    func refuse(next count: Int) { state.withLock { $0.behaviour.failures = count } }
    var delivered: [Received] { received.filter { (200..<300).contains($0.status) } }
    var tokenRequests: [String] { state.withLock { $0.tokenRequests } }
    var url: String { "http://127.0.0.1:\(port)/hook" }
    var tokenURL: String { "http://127.0.0.1:\(port)/token" }

    private init(behaviour: Behaviour, port: Int) {
        self.state = Mutex(State(behaviour: behaviour))
        self.port = port
    }

    static func start(_ behaviour: Behaviour = Behaviour()) async throws -> HookServer {
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let box = Mutex<HookServer?>(nil)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 16 << 20))
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            guard let server = box.withLock({ $0 }) else { return Response(status: .internalServerError) }
            return server.answer(headers: headers, body: body)
        }
        router.post("/token") { request, _ -> Response in
            let form = String(buffer: try await request.body.collect(upTo: 1 << 20))
            guard let server = box.withLock({ $0 }) else { return Response(status: .internalServerError) }
            return server.issueToken(form: form)
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            }, logger: Self.quietLogger)
        let task = Task { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            throw TestFailure("the hook server did not start")
        }
        let server = HookServer(behaviour: behaviour, port: port)
        box.withLock { $0 = server }
        server.task.withLock { $0 = task }
        return server
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "hook-server")
        logger.logLevel = .critical
        return logger
    }

    func stop() async {
        let task = self.task.withLock { $0 }
        task?.cancel()
        _ = try? await task?.value
    }

    private func answer(headers: [String: String], body: String) -> Response {
        state.withLock { state in
            var status = 200
            var responseHeaders = HTTPFields()
            if state.behaviour.requireToken {
                let token = headers["authorization"].map { String($0.dropFirst("Bearer ".count)) }
                if token == nil || !state.tokens.contains(token!) { status = 401 }
            }
            if status == 200, state.behaviour.failures > 0 {
                state.behaviour.failures -= 1
                status = state.behaviour.failureStatus
                if let retryAfter = state.behaviour.retryAfter { responseHeaders[.retryAfter] = retryAfter }
            }
            if status == 200, let marker = state.behaviour.rejectMarker, body.contains(marker) { status = 400 }
            state.received.append(Received(headers: headers, body: body, status: status))
            let text = status == 400 ? "bad event: rejected by the test receiver" : "status \(status)"
            return Response(
                status: .init(code: status), headers: responseHeaders,
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }

    private func issueToken(form: String) -> Response {
        state.withLock { state in
            state.tokenRequests.append(form)
            let fields = Dictionary(
                form.split(separator: "&").map { pair -> (String, String) in
                    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    return (parts[0], (parts.count > 1 ? parts[1] : "").removingPercentEncoding ?? "")
                }, uniquingKeysWith: { a, _ in a })
            guard fields["grant_type"] == "client_credentials", fields["client_id"] == state.behaviour.clientID,
                fields["client_secret"] == state.behaviour.clientSecret
            else {
                return Response(status: .unauthorized)
            }
            let token = "tok-\(state.tokens.count + 1)"
            state.tokens.append(token)
            let json = "{\"access_token\":\"\(token)\",\"token_type\":\"bearer\",\"expires_in\":3600}"
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: json)))
        }
    }
}
