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
        return ProxyAuth(
            keys: keys, anonymousRole: config.anonymousRole, anonymousWrites: config.anonymousWrites,
            requireExp: config.jwtRequireExp, audience: config.jwtAudience, issuer: config.jwtIssuer)
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
        guard let role = claims.role ?? anonymousRole, !role.isEmpty else {
            throw APIError.unauthorized("the token has no role claim and no api.anonymous_role is set")
        }
        return ProxyIdentity(role: role, claims: Self.payloadJSON(token) ?? "{}", anonymous: false)
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
