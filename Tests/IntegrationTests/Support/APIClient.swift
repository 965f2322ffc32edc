import AsyncHTTPClient
import Foundation
import JWTKit
import NIOCore
import NIOHTTP1

/// Talks to a running pgbridge's HTTP API over a real socket.
struct APIClient {
    let base: String
    var token: String?

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
    }

    /// The port pgbridge logged ("HTTP API listening … address=127.0.0.1:PORT").
    static func waitForPort(_ bridge: BridgeProcess, timeout: Duration = .seconds(60)) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in bridge.stderr.split(separator: "\n") where line.contains("HTTP API listening") {
                if let match = line.firstMatch(of: /127\.0\.0\.1:(\d+)/), let port = Int(match.1) { return port }
            }
            guard bridge.isRunning else { throw TestFailure("pgbridge exited: \(bridge.stderr.suffix(3000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("pgbridge did not start its API: \(bridge.stderr.suffix(3000))")
    }

    func request(
        _ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = [],
        token overrideToken: String?? = .none
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        let bearer = overrideToken ?? token
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            if !headers.contains(where: { $0.0.lowercased() == "content-type" }) {
                request.headers.add(name: "Content-Type", value: "application/json")
            }
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: bytes))
    }

    func get(_ path: String) async throws -> Reply { try await request(.GET, path) }

    /// Opens an SSE stream; `onEvent` gets (id, data) until it returns false.
    func stream(
        _ path: String, headers: [(String, String)] = [], timeout: Duration = .seconds(60),
        onOpen: @Sendable () async throws -> Void = {}, _ onEvent: (String, String) throws -> Bool
    ) async throws {
        try await streamEvents(path, headers: headers, timeout: timeout, onOpen: onOpen) { _, id, data in
            try onEvent(id, data)
        }
    }

    /// Opens an SSE stream; `onEvent` gets (event name, id, data) until it returns false.
    func streamEvents(
        _ path: String, headers: [(String, String)] = [], timeout: Duration = .seconds(60),
        onOpen: @Sendable () async throws -> Void = {}, _ onEvent: (String, String, String) throws -> Bool
    ) async throws {
        var request = HTTPClientRequest(url: base + path)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(
            request, timeout: .seconds(Int64(timeout.components.seconds)))
        guard response.status == .ok else { throw TestFailure("stream answered \(response.status)") }
        try await onOpen()
        var pending = ""
        for try await chunk in response.body {
            pending += String(buffer: chunk)
            while let end = pending.range(of: "\n\n") {
                let block = pending[..<end.lowerBound]
                pending = String(pending[end.upperBound...])
                var id = ""
                var data = ""
                var name = "message"
                for line in block.split(separator: "\n") {
                    if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                    if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
                    if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                }
                if !data.isEmpty, !(try onEvent(name, id, data)) { return }
            }
        }
    }
}

/// HS256 tokens with a `role` claim, as the REST proxy's tests sign them.
enum RoleTokens {
    struct Claims: JWTPayload {
        var role: String
        var exp: ExpirationClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func sign(role: String, secret: String, expiresIn seconds: TimeInterval = 600) async throws -> String {
        let keys = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(Claims(role: role, exp: .init(value: Date().addingTimeInterval(seconds))))
    }
}
