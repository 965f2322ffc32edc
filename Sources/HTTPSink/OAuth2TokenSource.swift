import AsyncHTTPClient
import BridgeCore
import Foundation
import NIOCore

/// Fetches and caches an OAuth2 access token (client-credentials grant), refreshed shortly
/// before it expires or when the endpoint answers 401.
actor OAuth2TokenSource {
    let config: OAuth2Config
    let client: HTTPClient
    let timeout: Duration
    private var token: String?
    private var expires: ContinuousClock.Instant = .now

    init(config: OAuth2Config, client: HTTPClient, timeout: Duration) {
        self.config = config
        self.client = client
        self.timeout = timeout
    }

    func accessToken() async throws -> String {
        if let token, ContinuousClock.now < expires { return token }
        return try await refresh()
    }

    func invalidate() { token = nil }

    private func refresh() async throws -> String {
        var request = HTTPClientRequest(url: config.tokenURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        var form = [
            ("grant_type", "client_credentials"), ("client_id", config.clientKey),
            ("client_secret", config.clientSecret),
        ]
        if !config.scopes.isEmpty { form.append(("scope", config.scopes.joined(separator: " "))) }
        let body = form.map { "\($0.0)=\(Self.formEncode($0.1))" }.joined(separator: "&")
        request.body = .bytes(Array(body.utf8))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .nanoseconds(timeout.nanosecondCount))
        } catch {
            throw SinkError(
                sink: "oauth2 \(HTTPSink.redacted(config.tokenURL))", message: "token request failed: \(error)")
        }
        let data = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(response.status.code) else {
            // The body may echo the request: not shown (it could hold the secret).
            throw SinkError(
                sink: "oauth2 \(HTTPSink.redacted(config.tokenURL))",
                message: "token endpoint answered \(response.status.code): check client_key, client_secret and scopes",
                retriable: response.status.code >= 500 || response.status.code == 429)
        }
        guard
            let json = try? JSONSerialization.jsonObject(with: Data(data.readableBytesView)) as? [String: Any],
            let accessToken = json["access_token"] as? String
        else {
            throw SinkError(
                sink: "oauth2 \(HTTPSink.redacted(config.tokenURL))", message: "the token response has no access_token")
        }
        let lifetime = (json["expires_in"] as? Int) ?? Int((json["expires_in"] as? String) ?? "") ?? 3600
        token = accessToken
        expires = .now + .seconds(max(lifetime - 30, 1))
        return accessToken
    }

    static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
