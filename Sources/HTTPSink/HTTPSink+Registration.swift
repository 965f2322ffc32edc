import BridgeCore

extension HTTPSink {
    /// `kind: http`: webhooks (`url`, `method`, `headers`, `template`, batching, OAuth2). More
    /// retries by default than other kinds: endpoints answer 5xx for passing reasons.
    public static let registration = SinkRegistration(
        kind: "http", defaultRetries: 5, takesDeadLetters: false,
        parse: { node, keys, _ in try parse(node, keys) },
        make: { settings, _, context in
            try HTTPSink(
                config: settings, format: context.format, version: context.version, logger: context.logger)
        })

    static func parse(_ node: ConfigNode, _ keys: ConfigKeys) throws -> HTTPSinkConfig {
        guard let urlNode = keys["url"] else { throw node.error("missing url, e.g. https://hooks.example.com/pg") }
        let url = try urlNode.string()
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw urlNode.error("expected an http:// or https:// URL")
        }
        var config = HTTPSinkConfig(url: url)
        if let methodNode = keys["method"] {
            let method = try methodNode.string().uppercased()
            guard ["POST", "PUT", "PATCH"].contains(method) else {
                throw methodNode.error("method must be POST, PUT or PATCH")
            }
            config.method = method
        }
        if let headersNode = keys["headers"] {
            for (name, value) in try headersNode.mappingEntries(expected: "header names to values") {
                config.headers.append((name, try value.string()))
            }
        }
        config.template = try keys["template"]?.string()
        if let template = config.template {
            do {
                _ = try BodyTemplate(template)
            } catch {
                throw keys["template"]!.error(error.message)
            }
        }
        config.preset = try BridgeConfig.enumValue(keys["preset"], default: .none)
        if config.preset == .slack, config.template == nil {
            throw (keys["preset"] ?? node).error(
                "preset slack needs a template: the message text, e.g. \"{{ .after.name }} changed\"")
        }
        config.batchCount = try keys["batch_count"]?.int(range: 1...100_000) ?? 1
        if config.batchCount > 1, config.template != nil {
            throw keys["batch_count"]!.error(
                "batch_count > 1 sends a JSON array of events: it cannot be combined with template")
        }
        config.parallelism = try keys["parallelism"]?.int(range: 1...1024) ?? 1
        config.timeout = try keys["timeout"]?.duration() ?? config.timeout
        if let oauthNode = keys["oauth2"] {
            config.oauth2 = try oauthNode.withKeys { oauth in
                // Every key is read (and checked) even when disabled: none is accepted and ignored.
                let enabled = try oauth["enabled"]?.bool() ?? true
                let tokenURL = try oauth["token_url"]?.string() ?? ""
                let clientKey = try oauth["client_key"]?.string() ?? ""
                let clientSecret = try oauth["client_secret"]?.string() ?? ""
                let scopes = try oauth["scopes"]?.list(orCommaSeparated: false) ?? []
                guard enabled else { return nil }
                guard !tokenURL.isEmpty else { throw oauthNode.error("missing token_url: the OAuth2 token endpoint") }
                guard !clientKey.isEmpty else { throw oauthNode.error("missing client_key") }
                return OAuth2Config(
                    clientKey: clientKey, clientSecret: clientSecret, tokenURL: tokenURL, scopes: scopes)
            }
        }
        config.contentMode = try BridgeConfig.enumValue(keys["content_mode"], default: .structured)
        return config
    }

}
