import Foundation
import JWTKit
import Testing

/// Roles as PostgREST does them: the role at `api.jwt_role_claim`, the `request.*` settings that
/// policies read, and `api.rest_pre_request` in every request's transaction.
@Suite("REST proxy roles and request settings", .enabled(if: TestEnvironment.hasBinary))
struct RestProxyRolesTests {
    static let secret = "rest-proxy-roles-secret-0123456789abcdef"

    struct Claims: JWTPayload {
        struct Metadata: Codable { var role: String }
        var sub: String
        var app_metadata: Metadata
        var exp: ExpirationClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    func token(role: String, subject: String) async throws -> String {
        let keys = await JWTKeyCollection().add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        return try await keys.sign(
            Claims(
                sub: subject, app_metadata: .init(role: role), exp: .init(value: Date().addingTimeInterval(600))))
    }

    @Test func policiesSeeTheClaimsHeadersAndCookies() async throws {
        let db = try TestDatabase(prefix: "rest_roles")
        defer { db.drop() }
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_member"))
            CREATE TABLE notes (id int PRIMARY KEY, owner text NOT NULL, tenant text NOT NULL);
            INSERT INTO notes VALUES (1, 'u1', 'acme'), (2, 'u1', 'other'), (3, 'u2', 'acme');
            ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
            CREATE POLICY mine ON notes USING (
              owner = current_setting('request.jwt.claims', true)::json->>'sub'
              AND tenant = current_setting('request.headers', true)::json->>'x-tenant');
            GRANT SELECT ON notes TO pgbridge_test_member;
            CREATE FUNCTION whoami() RETURNS json LANGUAGE sql STABLE AS $$
              SELECT json_build_object('role', current_user, 'method', current_setting('request.method'),
                'path', current_setting('request.path'),
                'cookie', current_setting('request.cookies')::json->>'session') $$;
            CREATE FUNCTION check_request() RETURNS void LANGUAGE plpgsql AS $$ BEGIN
              IF current_setting('request.headers', true)::json->>'x-block' = 'yes' THEN
                RAISE EXCEPTION 'blocked by check_request' USING HINT = 'drop the X-Block header';
              END IF; END $$;
            """)
        let directory = try TestEnvironment.scratchDirectory("rest-\(db.name)")
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", jwt_secret: \(Self.secret), jwt_role_claim: .app_metadata.role,
              rest_pre_request: public.check_request}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        let member = APIClient(
            base: "http://127.0.0.1:\(port)", token: try await token(role: "pgbridge_test_member", subject: "u1"))

        let acme = try await member.request(.GET, "/v1/tables/notes?order=id", headers: [("X-Tenant", "acme")])
        #expect(acme.status == 200, "\(acme.body)")
        #expect(acme.body == #"[{"id":1,"owner":"u1","tenant":"acme"}]"#, "claims and headers reach the policy")
        let other = try await member.request(.GET, "/v1/tables/notes?order=id", headers: [("X-Tenant", "other")])
        #expect(other.body == #"[{"id":2,"owner":"u1","tenant":"other"}]"#)

        let who = try await member.request(
            .GET, "/v1/tables/rpc/whoami", headers: [("Cookie", "theme=dark; session=abc123")])
        #expect(who.status == 200, "\(who.body)")
        let settings = who.json
        #expect(settings["role"] as? String == "pgbridge_test_member", "the role came from .app_metadata.role")
        #expect(settings["method"] as? String == "GET")
        #expect(settings["path"] as? String == "/v1/tables/rpc/whoami")
        #expect(settings["cookie"] as? String == "abc123")

        let blocked = try await member.request(
            .GET, "/v1/tables/notes", headers: [("X-Tenant", "acme"), ("X-Block", "yes")])
        #expect(blocked.status == 400, "\(blocked.body)")
        #expect(blocked.json["code"] as? String == "P0001")
        #expect(blocked.json["message"] as? String == "blocked by check_request")
        #expect(blocked.json["hint"] as? String == "drop the X-Block header")

        // A token without the claim at that path (its role at .role) is refused: no anonymous role.
        let keys = await JWTKeyCollection().add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        struct TopLevel: JWTPayload {
            var role: String
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let elsewhere = APIClient(base: member.base, token: try await keys.sign(TopLevel(role: "pgbridge_test_member")))
        let refused = try await elsewhere.get("/v1/tables/notes")
        #expect(refused.status == 401, "\(refused.body)")
        #expect(refused.json["code"] as? String == "PGRST301")
    }

    @Test func aMalformedRoleClaimPathStopsTheStart() async throws {
        let directory = try TestEnvironment.scratchDirectory("rest-claim")
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(try #require(TestEnvironment.postgresURL))"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", jwt_secret: \(Self.secret), jwt_role_claim: ".app[x"}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let run = try await BridgeProcess.run(["run", "--config", config], directory: directory)
        #expect(run.status != 0)
        #expect(run.stderr.contains("api.jwt_role_claim"), "\(run.stderr.suffix(600))")
    }
}
