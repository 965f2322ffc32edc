import Foundation

extension BridgeConfig {
    static func parseAPI(_ node: ConfigNode, _ keys: ConfigKeys) throws -> APIConfig {
        var api = APIConfig()
        if let listen = keys["listen"] {
            (api.host, api.port) = try parseListen(listen)
        }
        if let token = keys["admin_token"] {
            let text = try token.string()
            guard text.count >= 16 else {
                throw token.error("too short: use at least 16 random characters (e.g. openssl rand -hex 24)")
            }
            api.adminToken = text
        }
        switch (keys["jwt_secret"], keys["jwt_public_key"]) {
        case (.some(let secret), .some):
            throw secret.error("set either jwt_secret (HS256) or jwt_public_key (RS256), not both")
        case (.some(let secret), nil):
            let text = try secret.string()
            guard text.utf8.count >= 32 else {
                throw secret.error("too short for HS256: use at least 32 bytes (e.g. openssl rand -hex 32)")
            }
            api.jwt = .hs256(secret: text)
        case (nil, .some(let key)):
            let text = try key.string()
            guard text.contains("-----BEGIN PUBLIC KEY-----") || text.contains("-----BEGIN RSA PUBLIC KEY-----")
            else {
                throw key.error("expected a PEM public key (-----BEGIN PUBLIC KEY----- …)")
            }
            api.jwt = .rs256(publicKeyPEM: text)
        case (nil, nil):
            break
        }
        if let role = keys["anonymous_role"], !role.isNull {
            let text = try role.string()
            guard !text.isEmpty, text.utf8.count <= 63 else { throw role.error("expected a role name") }
            api.anonymousRole = text
        }
        if let writes = keys["anonymous_writes"] {
            api.anonymousWrites = try writes.bool()
            if api.anonymousWrites, api.anonymousRole == nil {
                throw writes.error("anonymous_writes needs anonymous_role: the role anonymous writes run as")
            }
        }
        api.bufferEvents = try keys["buffer_events"]?.int(range: 0...10_000_000) ?? api.bufferEvents
        api.poolSize = try keys["pool_size"]?.int(range: 1...256) ?? api.poolSize
        api.statementTimeout = try keys["statement_timeout"]?.duration() ?? api.statementTimeout
        api.maxBodyBytes = try keys["max_body_bytes"]?.int(range: 1024...(1 << 30)) ?? api.maxBodyBytes
        for key in ["jwt_require_exp", "jwt_audience", "jwt_issuer"] where keys[key] != nil && api.jwt == nil {
            throw keys[key]!.error("needs jwt_secret or jwt_public_key: without them no token is accepted")
        }
        api.bufferBytes = try keys["buffer_bytes"]?.int(range: (1 << 20)...(1 << 40)) ?? api.bufferBytes
        api.maxConnections = try keys["max_connections"]?.int(range: 1...1_000_000) ?? api.maxConnections
        api.idleTimeout = try keys["idle_timeout"]?.duration() ?? api.idleTimeout
        api.writeTimeout = try keys["write_timeout"]?.duration() ?? api.writeTimeout
        for key in ["idle_timeout", "write_timeout"] {
            if let node = keys[key], try node.duration() < .seconds(1) { throw node.error("must be at least 1s") }
        }
        api.jwtRequireExp = try keys["jwt_require_exp"]?.bool() ?? false
        api.jwtAudience = try keys["jwt_audience"]?.string()
        api.jwtIssuer = try keys["jwt_issuer"]?.string()
        if let path = keys["rest_path"] {
            let text = try path.string()
            let segments = text.split(separator: "/")
            guard text.hasPrefix("/"), !text.hasSuffix("/") || text == "/",
                segments.allSatisfy({ $0.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) } })
            else {
                throw path.error("expected a path such as /rest or /v1/tables (no trailing slash, no parameters)")
            }
            let reserved = ["v1", "healthz", "readyz", "metrics"]
            if let first = segments.first, reserved.contains(String(first)), text != "/v1/tables" {
                throw path.error(
                    "\(text) would overlap pgbridge's own routes under /\(first): pick another path, e.g. /rest")
            }
            api.restPath = text
        }
        if let schemas = keys["rest_schemas"] {
            let list = try schemas.list().map { try $0.string() }
            guard !list.isEmpty, list.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else {
                throw schemas.error("expected a list of schema names, e.g. [public, api]")
            }
            if let hidden = list.first(where: APIConfig.isHiddenSchema) {
                throw schemas.error(
                    "\(hidden) is never served by the REST proxy (pgbridge's own objects and the system catalogs)")
            }
            api.restSchemas = list
        }
        api.restAllowTransactionOverride = try keys["rest_allow_tx_override"]?.bool() ?? false
        api.livePipe = try keys["live_pipe"]?.string()
        if let claim = keys["jwt_role_claim"] {
            let text = try claim.string()
            guard text.hasPrefix("."), text.count <= 200 else {
                throw claim.error("expected a JSON path such as .role or .app_metadata.role")
            }
            api.jwtRoleClaim = text
        }
        if let function = keys["rest_pre_request"] {
            let text = try function.string()
            let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            let valid =
                (1...2).contains(parts.count)
                && parts.allSatisfy { part in
                    !part.isEmpty && part.utf8.count <= 63
                        && part.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
                        && !(part.first?.isNumber ?? true)
                }
            guard valid else {
                throw function.error("expected a function name such as public.check_request (schema.name)")
            }
            api.restPreRequest = parts.count == 2 ? (parts[0], parts[1]) : ("public", parts[0])
        }
        return api
    }

    /// `host:port`, `[v6]:port` or `:port` (127.0.0.1).
    static func parseListen(_ node: ConfigNode) throws -> (host: String, port: Int) {
        let text = try node.string()
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw node.error("expected host:port, e.g. 127.0.0.1:8080, got '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "127.0.0.1" }
        return (host, port)
    }
}
