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
    }
}
