import BridgeCore
import Foundation
import JWTKit

/// Who a REST-proxy request runs as: the `role` claim of a verified JWT, or the configured
/// anonymous role.
struct ProxyIdentity: Sendable {
    var role: String
    /// The token's claims as JSON (`request.jwt.claims` for row-level security policies).
    var claims: String
    var anonymous: Bool
}

struct ProxyClaims: JWTPayload {
    var role: String?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var aud: AudienceClaim?
    var iss: IssuerClaim?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp?.verifyNotExpired()
        try nbf?.verifyNotBefore()
    }
}

struct ProxyAuth: Sendable {
    let keys: JWTKeyCollection?
    let anonymousRole: String?
    let anonymousWrites: Bool
    var requireExp = false
    var audience: String?
    var issuer: String?
    /// Where the role is in the token's claims (`api.jwt_role_claim`, PostgREST's
    /// `jwt-role-claim-key`): `.role`, `.app_metadata.role`, `."https://example.com/role"`, `.roles[0]`.
    var roleClaim: [RoleClaimStep] = [.key("role")]

    enum RoleClaimStep: Sendable, Equatable {
        case key(String)
        case index(Int)
    }

    /// Parses a role claim path; nil when it is malformed.
    static func roleClaimPath(_ text: String) -> [RoleClaimStep]? {
        var steps: [RoleClaimStep] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            if rest.hasPrefix(".\"") {
                rest = rest.dropFirst(2)
                guard let end = rest.firstIndex(of: "\"") else { return nil }
                steps.append(.key(String(rest[..<end])))
                rest = rest[rest.index(after: end)...]
            } else if rest.hasPrefix(".") {
                rest = rest.dropFirst()
                let end = rest.firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
                guard end > rest.startIndex else { return nil }
                steps.append(.key(String(rest[..<end])))
                rest = rest[end...]
            } else if rest.hasPrefix("[") {
                guard let end = rest.firstIndex(of: "]"),
                    let index = Int(rest[rest.index(after: rest.startIndex)..<end])
                else { return nil }
                steps.append(.index(index))
                rest = rest[rest.index(after: end)...]
            } else {
                return nil
            }
        }
        return steps.isEmpty ? nil : steps
    }

    /// The role at `roleClaim` in the token's payload (nil when absent or not a string).
    func role(inPayload payload: String) -> String? {
        guard var value: Any = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) else { return nil }
        for step in roleClaim {
            switch step {
            case .key(let key):
                guard let object = value as? [String: Any], let next = object[key] else { return nil }
                value = next
            case .index(let index):
                guard let array = value as? [Any], array.indices.contains(index) else { return nil }
                value = array[index]
            }
        }
        return value as? String
    }

    static func make(_ config: APIConfig) async throws -> ProxyAuth {
        var keys: JWTKeyCollection?
        switch config.jwt {
        case .hs256(let secret):
            keys = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        case .rs256(let pem):
            keys = await JWTKeyCollection().add(rsa: try Insecure.RSA.PublicKey(pem: pem), digestAlgorithm: .sha256)
        case nil:
            keys = nil
        }
        var auth = ProxyAuth(
            keys: keys, anonymousRole: config.anonymousRole, anonymousWrites: config.anonymousWrites,
            requireExp: config.jwtRequireExp, audience: config.jwtAudience, issuer: config.jwtIssuer)
        guard let path = roleClaimPath(config.jwtRoleClaim) else {
            throw RoleClaimError(path: config.jwtRoleClaim)
        }
        auth.roleClaim = path
        return auth
    }

    /// Verifies the request's bearer token; refuses what the configuration does not allow.
    func identify(authorization: String?, write: Bool) async throws -> ProxyIdentity {
        guard let authorization else {
            guard let anonymousRole else {
                throw APIError.unauthorized(
                    "this endpoint needs Authorization: Bearer <JWT> (no api.anonymous_role is set)")
            }
            guard !write || anonymousWrites else {
                throw APIError.unauthorized("writes need Authorization: Bearer <JWT> (api.anonymous_writes is off)")
            }
            return ProxyIdentity(role: anonymousRole, claims: "{}", anonymous: true)
        }
        guard authorization.hasPrefix("Bearer ") else {
            throw APIError.unauthorized("expected Authorization: Bearer <JWT>")
        }
        let token = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard let keys else {
            throw APIError.unauthorized("tokens are not accepted: set api.jwt_secret or api.jwt_public_key")
        }
        let claims: ProxyClaims
        do {
            claims = try await keys.verify(token, as: ProxyClaims.self)
        } catch {
            throw APIError.unauthorized("invalid token: \(Self.reason(error))")
        }
        if requireExp, claims.exp == nil {
            throw APIError.unauthorized("invalid token: it has no exp claim (api.jwt_require_exp)")
        }
        if let audience, !(claims.aud?.value.contains(audience) ?? false) {
            throw APIError.unauthorized("invalid token: its aud claim does not name this API (api.jwt_audience)")
        }
        if let issuer, claims.iss?.value != issuer {
            throw APIError.unauthorized("invalid token: its iss claim is not the configured issuer (api.jwt_issuer)")
        }
        let payload = Self.payloadJSON(token) ?? "{}"
        let claimed = roleClaim == [.key("role")] ? claims.role : role(inPayload: payload)
        guard let role = claimed ?? anonymousRole, !role.isEmpty else {
            throw APIError.unauthorized(
                "the token has no role claim (api.jwt_role_claim) and no api.anonymous_role is set")
        }
        return ProxyIdentity(role: role, claims: payload, anonymous: false)
    }

    static func reason(_ error: any Error) -> String {
        guard let error = error as? JWTError else { return "malformed" }
        switch error.errorType {
        case .claimVerificationFailure: return "expired or not yet valid"
        case .signatureVerificationFailed: return "bad signature"
        default: return "malformed or signed with another key"
        }
    }

    /// The token's payload segment, decoded (already verified).
    static func payloadJSON(_ token: String) -> String? {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// `api.jwt_role_claim` does not parse.
struct RoleClaimError: Error, CustomStringConvertible {
    var path: String
    var description: String {
        "api.jwt_role_claim '\(path.prefix(100))' is not a JSON path: use steps like .role, .app_metadata.role, .\"https://example.com/role\" or .roles[0]"
    }
}
