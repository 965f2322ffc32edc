import Foundation
import JWTKit
import Testing

/// PostgREST's own Python client (`postgrest` on PyPI, installed by scripts/test into a virtual
/// environment under .tmp/) against the real binary: every check in Tests/PostgRESTClient/checks.py
/// compares an answer with what PostgREST's documentation specifies.
@Suite("PostgREST client", .enabled(if: TestEnvironment.hasBinary && TestEnvironment.postgrestPython != nil))
struct PostgRESTClientTests {
    static let secret = "postgrest-client-test-secret-0123456789"

    func token(_ role: String) async throws -> String {
        try await RoleTokens.sign(role: role, secret: Self.secret)
    }

    static let fixture = """
        \(TestDatabase.createRoles("pgbridge_test_alice", "pgbridge_test_bob"))
        CREATE TABLE products (
          id int PRIMARY KEY, name text UNIQUE NOT NULL, price numeric, tags text[], data jsonb, doc tsvector,
          period int4range, created timestamptz DEFAULT now(), stock int DEFAULT 7);
        INSERT INTO products (id, name, price, tags, data, doc, period)
          SELECT g, (ARRAY['alpha','beta','gamma','delta','theta','iota','zeta','eta','omega','kappa'])[g],
            CASE WHEN g = 2 THEN 2.5 ELSE g END,
            CASE WHEN g % 2 = 1 THEN ARRAY['red','odd'] ELSE ARRAY['blue','even'] END,
            CASE WHEN g < 10 THEN jsonb_build_object('color', CASE WHEN g % 2 = 1 THEN 'red' ELSE 'blue' END, 'size', g) END,
            to_tsvector('english', CASE g WHEN 1 THEN 'the quick brown fox' WHEN 2 THEN 'the lazy dog' ELSE 'nothing here' END),
            int4range((g - 1) * 10, g * 10)
          FROM generate_series(1, 10) g;
        GRANT SELECT, INSERT, UPDATE, DELETE ON products TO pgbridge_test_alice;
        CREATE TABLE readings (id int PRIMARY KEY, time timestamptz NOT NULL, owner text NOT NULL);
        INSERT INTO readings SELECT g, TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '1 minute',
            CASE WHEN g % 2 = 0 THEN 'pgbridge_test_alice' ELSE 'pgbridge_test_bob' END
          FROM generate_series(1, 20) g;
        ALTER TABLE readings ENABLE ROW LEVEL SECURITY;
        CREATE POLICY own ON readings USING (owner = current_user) WITH CHECK (owner = current_user);
        GRANT SELECT, INSERT ON readings TO pgbridge_test_alice, pgbridge_test_bob;
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
        CREATE TABLE orders (
          id int PRIMARY KEY, customer_id int REFERENCES customers, billing_customer_id int REFERENCES customers);
        CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric);
        CREATE TABLE order_items (
          order_id int REFERENCES orders, item_id int REFERENCES items, quantity int, PRIMARY KEY (order_id, item_id));
        CREATE TABLE profiles (customer_id int PRIMARY KEY REFERENCES customers, bio text);
        INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bo'), (3, 'Cy');
        INSERT INTO orders VALUES (10, 1, 2), (11, 1, 1), (12, 2, 2);
        INSERT INTO items VALUES (100, 'apple', 1.5), (101, 'pear', 2), (102, 'fig', 3);
        INSERT INTO order_items VALUES (10, 100, 2), (10, 101, 1), (11, 102, 5), (12, 100, 1);
        INSERT INTO profiles VALUES (1, 'likes apples');
        GRANT SELECT ON customers, orders, items, order_items, profiles TO pgbridge_test_alice;
        CREATE FUNCTION add_them(a integer, b integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
        CREATE FUNCTION greet(name text, greeting text DEFAULT 'hello') RETURNS text
          LANGUAGE sql IMMUTABLE AS $$ SELECT greeting || ' ' || name $$;
        CREATE FUNCTION products_cheaper_than(max_price numeric) RETURNS SETOF products
          LANGUAGE sql STABLE AS $$ SELECT * FROM products WHERE price < max_price $$;
        CREATE FUNCTION ids_up_to(n int) RETURNS SETOF int LANGUAGE sql IMMUTABLE AS $$ SELECT generate_series(1, n) $$;
        CREATE FUNCTION echo_body(json) RETURNS json LANGUAGE sql IMMUTABLE AS $$ SELECT $1 $$;
        CREATE FUNCTION rename_product(product_id int, new_name text) RETURNS products
          LANGUAGE sql AS $$ UPDATE products SET name = new_name WHERE id = product_id RETURNING * $$;
        CREATE FUNCTION do_nothing() RETURNS void LANGUAGE sql AS $$ SELECT $$;
        CREATE SCHEMA api;
        CREATE TABLE api.notes (id int PRIMARY KEY, body text);
        INSERT INTO api.notes VALUES (1, 'in the api schema');
        GRANT USAGE ON SCHEMA api TO pgbridge_test_alice;
        GRANT SELECT, INSERT ON api.notes TO pgbridge_test_alice;
        CREATE SCHEMA secret;
        CREATE TABLE secret.notes (id int PRIMARY KEY);
        """

    @Test func everyOperationAnswersAsPostgRESTDocumentsIt() async throws {
        let python = try #require(TestEnvironment.postgrestPython)
        let db = try TestDatabase(prefix: "pgrst")
        defer { db.drop() }
        try db.sql(Self.fixture)
        let directory = try TestEnvironment.scratchDirectory("pgrst-\(db.name)")
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", jwt_secret: \(Self.secret), rest_path: /rest, rest_schemas: [public, api]}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        let script = TestEnvironment.repositoryRoot + "/Tests/PostgRESTClient/checks.py"
        let alice = try await token("pgbridge_test_alice")
        let bob = try await token("pgbridge_test_bob")
        let run = try await TestEnvironment.shellAsync(
            "'\(python)' '\(script)' 'http://127.0.0.1:\(port)/rest' '\(alice)' '\(bob)' 2>&1")
        var passed = 0
        for line in run.output.split(separator: "\n") {
            guard let result = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let name = result["check"] as? String
            else {
                Issue.record("the client printed: \(line.prefix(500))")
                continue
            }
            if result["ok"] as? Bool == true {
                passed += 1
            } else {
                Issue.record("\(name) failed:\n\(result["detail"] as? String ?? "?")")
            }
        }
        #expect(run.status == 0, "the client's checks failed (exit status \(run.status))")
        let checks = try String(contentsOfFile: script, encoding: .utf8).components(separatedBy: "\n@check\n").count - 1
        #expect(checks >= 18 && passed == checks, "\(passed) of \(checks) checks passed")
    }
}
