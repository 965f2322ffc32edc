import BridgeCore

public struct HTTPSinkConfig: SinkSettings {
    public var url: String
    public var method: String
    /// Sent with every request; values may hold secrets and are never logged.
    public var headers: [(name: String, value: String)]
    /// The body for each event instead of its JSON (`{{ .after.temp }}` placeholders).
    public var template: String?
    public var preset: HTTPPreset
    /// Events per request; more than 1 sends a JSON array.
    public var batchCount: Int
    /// Requests in flight at once; events with the same key always go in order.
    public var parallelism: Int
    public var timeout: Duration
    public var oauth2: OAuth2Config?
    public var contentMode: CloudEventsMode

    public init(
        url: String, method: String = "POST", headers: [(name: String, value: String)] = [], template: String? = nil,
        preset: HTTPPreset = .none, batchCount: Int = 1, parallelism: Int = 1, timeout: Duration = .seconds(10),
        oauth2: OAuth2Config? = nil, contentMode: CloudEventsMode = .structured
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.template = template
        self.preset = preset
        self.batchCount = batchCount
        self.parallelism = parallelism
        self.timeout = timeout
        self.oauth2 = oauth2
        self.contentMode = contentMode
    }
}

public enum HTTPPreset: String, Sendable, CaseIterable {
    case none
    /// Slack incoming webhooks: the rendered template becomes `{"text": "…"}`.
    case slack
}

/// OAuth2 client-credentials grant: a token is fetched from `tokenURL` and refreshed before it
/// expires (or when the endpoint answers 401).
public struct OAuth2Config: Sendable {
    public var clientKey: String
    public var clientSecret: String
    public var tokenURL: String
    public var scopes: [String]

    public init(clientKey: String, clientSecret: String, tokenURL: String, scopes: [String] = []) {
        self.clientKey = clientKey
        self.clientSecret = clientSecret
        self.tokenURL = tokenURL
        self.scopes = scopes
    }
}
