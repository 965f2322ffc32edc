import BridgeCore
import CryptoExtras
import Foundation
import JWTKit
import Testing

@testable import HTTPAPI

@Suite("REST proxy tokens")
struct ProxyAuthTests {
    struct Claims: JWTPayload {
        var role: String?
        var exp: ExpirationClaim
        var sub: String?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static let secret = "0123456789abcdef0123456789abcdef-secret"

    func claims(_ role: String?, expiresIn seconds: TimeInterval = 300) -> Claims {
        Claims(role: role, exp: .init(value: Date().addingTimeInterval(seconds)), sub: "user-7")
    }

    /// The message of the APIError `body` throws.
    func message(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch {
            return (error as? APIError)?.message
        }
    }

    func status(_ body: () async throws -> Void) async -> Int? {
        do {
            try await body()
            return nil
        } catch let error as APIError {
            return Int(error.status.code)
        } catch {
            return -1
        }
    }

    @Test func hs256TokensGiveTheirRoleAndClaims() async throws {
        let auth = try await ProxyAuth.make(APIConfig(jwt: .hs256(secret: Self.secret), anonymousRole: "web_anon"))
        let signer = await JWTKeyCollection().add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        let token = try await signer.sign(claims("web_user"))
        let identity = try await auth.identify(authorization: "Bearer \(token)", write: true)
        #expect(identity.role == "web_user" && !identity.anonymous)
        #expect(identity.claims.contains(#""sub":"user-7""#))
        // No role claim: the anonymous role.
        let roleless = try await signer.sign(claims(nil))
        #expect(try await auth.identify(authorization: "Bearer \(roleless)", write: false).role == "web_anon")
        // Expired, forged, malformed, missing for a write.
        let expired = try await signer.sign(claims("web_user", expiresIn: -60))
        #expect(await status { _ = try await auth.identify(authorization: "Bearer \(expired)", write: false) } == 401)
        let forger = await JWTKeyCollection().add(
            hmac: HMACKey(from: String(repeating: "z", count: 40)), digestAlgorithm: .sha256)
        let forged = try await forger.sign(claims("postgres"))
        #expect(await status { _ = try await auth.identify(authorization: "Bearer \(forged)", write: false) } == 401)
        #expect(await status { _ = try await auth.identify(authorization: "Bearer not.a.token", write: false) } == 401)
        #expect(await status { _ = try await auth.identify(authorization: nil, write: true) } == 401)
        #expect(
            await message { _ = try await auth.identify(authorization: nil, write: true) }
                == "writes need Authorization: Bearer <JWT> (api.anonymous_writes is off)")
        #expect(try await auth.identify(authorization: nil, write: false).anonymous)
    }

    @Test func rs256TokensVerifyWithThePublicKey() async throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let auth = try await ProxyAuth.make(APIConfig(jwt: .rs256(publicKeyPEM: key.publicKey.pemRepresentation)))
        let signer = await JWTKeyCollection().add(
            rsa: try Insecure.RSA.PrivateKey(backing: key), digestAlgorithm: .sha256)
        let token = try await signer.sign(claims("reporting"))
        #expect(try await auth.identify(authorization: "Bearer \(token)", write: false).role == "reporting")
        // An HS256 token made with the public key as secret (algorithm confusion) is refused.
        let confused = await JWTKeyCollection().add(
            hmac: HMACKey(from: key.publicKey.pemRepresentation), digestAlgorithm: .sha256)
        let attack = try await confused.sign(claims("postgres"))
        #expect(await status { _ = try await auth.identify(authorization: "Bearer \(attack)", write: false) } == 401)
        // Without an anonymous role, a request without a token is refused.
        #expect(await status { _ = try await auth.identify(authorization: nil, write: false) } == 401)
        #expect(
            await message { _ = try await auth.identify(authorization: nil, write: false) }
                == "this endpoint needs Authorization: Bearer <JWT> (no api.anonymous_role is set)")
    }
}

@Suite("REST proxy token policy")
struct ProxyTokenPolicyTests {
    struct Claims: JWTPayload {
        var role: String
        var exp: ExpirationClaim?
        var aud: AudienceClaim?
        var iss: IssuerClaim?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static let secret = "0123456789abcdef0123456789abcdef-policy"

    func message(_ auth: ProxyAuth, _ claims: Claims) async throws -> String {
        let signer = await JWTKeyCollection().add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        let token = try await signer.sign(claims)
        do {
            _ = try await auth.identify(authorization: "Bearer \(token)", write: false)
            return "accepted"
        } catch let error as APIError {
            return "\(error.status.code) \(error.message)"
        }
    }

    @Test func expirationAudienceAndIssuerAreEnforcedWhenConfigured() async throws {
        var config = APIConfig(jwt: .hs256(secret: Self.secret))
        config.jwtRequireExp = true
        config.jwtAudience = "pgbridge-api"
        config.jwtIssuer = "https://issuer.example"
        let auth = try await ProxyAuth.make(config)
        let exp = ExpirationClaim(value: Date().addingTimeInterval(300))
        let good = Claims(
            role: "r", exp: exp, aud: .init(value: ["other", "pgbridge-api"]), iss: "https://issuer.example")
        #expect(try await message(auth, good) == "accepted")
        var noExp = good
        noExp.exp = nil
        #expect(try await message(auth, noExp) == "401 invalid token: it has no exp claim (api.jwt_require_exp)")
        var wrongAudience = good
        wrongAudience.aud = .init(value: ["other"])
        #expect(try await message(auth, wrongAudience).contains("401 invalid token: its aud claim"))
        var noAudience = good
        noAudience.aud = nil
        #expect(try await message(auth, noAudience).contains("api.jwt_audience"))
        var wrongIssuer = good
        wrongIssuer.iss = "https://evil.example"
        #expect(try await message(auth, wrongIssuer).contains("api.jwt_issuer"))
        // Without the options, the same tokens pass (PostgREST's defaults).
        let lenient = try await ProxyAuth.make(APIConfig(jwt: .hs256(secret: Self.secret)))
        #expect(try await message(lenient, noExp) == "accepted")
        #expect(try await message(lenient, wrongIssuer) == "accepted")
    }
}
