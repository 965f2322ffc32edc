import CryptoExtras
import Foundation
import JWTKit
import Testing

/// RS256 tokens against the real binary: `api.jwt_public_key` in the configuration, a token
/// signed with the private key reads under its role and row-level security; a token of another
/// key, and an HS256 token made with the public key as its secret, are refused.
@Suite("REST proxy with RS256 tokens", .enabled(if: TestEnvironment.hasBinary))
struct RS256ProxyTests {
    static let admin = "rest-proxy-admin-token-rs256"

    struct Claims: JWTPayload {
        var role: String
        var exp: ExpirationClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func claims(_ role: String) -> Claims {
        Claims(role: role, exp: .init(value: Date().addingTimeInterval(300)))
    }

    @Test func rs256TokensThroughTheBinary() async throws {
        let db = try TestDatabase(prefix: "rs256")
        defer { db.drop() }
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_rs"))
            CREATE TABLE notes (id int PRIMARY KEY, owner text NOT NULL);
            INSERT INTO notes VALUES (1, 'pgbridge_test_rs'), (2, 'someone_else'), (3, 'pgbridge_test_rs');
            ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
            CREATE POLICY own ON notes USING (owner = current_user);
            GRANT SELECT ON notes TO pgbridge_test_rs;
            """)
        let directory = try TestEnvironment.scratchDirectory("rs256-\(db.name)")
        #expect(try await BridgeProcess.run(["setup", "--url", db.url], directory: directory).status == 0)
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let pem = key.publicKey.pemRepresentation
        let config = "\(directory)/pgbridge.yaml"
        let indentedPEM = pem.split(separator: "\n").map { "    \($0)" }.joined(separator: "\n")
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        api:
          listen: "127.0.0.1:0"
          admin_token: \(Self.admin)
          jwt_public_key: |
        \(indentedPEM)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        let base = "http://127.0.0.1:\(port)"

        let signer = await JWTKeyCollection().add(
            rsa: try Insecure.RSA.PrivateKey(backing: key), digestAlgorithm: .sha256)
        let reader = APIClient(base: base, token: try await signer.sign(Self.claims("pgbridge_test_rs")))
        let reply = try await reader.get("/v1/tables/public.notes?order=id")
        #expect(reply.status == 200, "\(reply.body.prefix(300))")
        let ids = ((try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [[String: Any]])?
            .compactMap { $0["id"] as? Int }
        #expect(ids == [1, 3], "row-level security for the token's role")

        // Another key's token, and the algorithm-confusion attack, are refused.
        let otherKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let other = await JWTKeyCollection().add(
            rsa: try Insecure.RSA.PrivateKey(backing: otherKey), digestAlgorithm: .sha256)
        let confused = await JWTKeyCollection().add(hmac: HMACKey(from: pem), digestAlgorithm: .sha256)
        for forged in [
            try await other.sign(Self.claims("pgbridge_test_rs")), try await confused.sign(Self.claims("postgres")),
        ] {
            let refused = try await APIClient(base: base, token: forged).get("/v1/tables/public.notes")
            #expect(refused.status == 401, "\(refused.status): \(refused.body.prefix(300))")
        }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0, "\(bridge.stderr.suffix(2000))")
    }
}
