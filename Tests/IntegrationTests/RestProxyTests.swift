import Foundation
import JWTKit
import Synchronization
import Testing

@testable import PostgresClient
@testable import PostgresSource

/// The REST proxy of the real binary against real PostgreSQL: reads, aggregates, CSV, writes
/// with X-Commit-LSN, row-level security for two roles, and an SQL injection corpus.
@Suite("REST proxy", .enabled(if: TestEnvironment.hasBinary))
struct RestProxyTests {
    static let secret = "rest-proxy-test-secret-0123456789abcdef"
    static let admin = "rest-proxy-admin-token-0123"

    func token(_ role: String, secret: String = secret, expires: TimeInterval = 300) async throws -> String {
        try await RoleTokens.sign(role: role, secret: secret, expiresIn: expires)
    }

    /// The rows of a 200 (or 201) answer; any other answer is a failure of the test (not "no rows").
    func rows(_ reply: APIClient.Reply, sourceLocation: SourceLocation = #_sourceLocation) -> [[String: Any]] {
        guard reply.status == 200 || reply.status == 201,
            let rows = (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [[String: Any]]
        else {
            Issue.record(
                "expected 200 and a JSON array, got \(reply.status): \(reply.body.prefix(300))",
                sourceLocation: sourceLocation)
            return []
        }
        return rows
    }

    func ids(_ reply: APIClient.Reply) -> [Int] { rows(reply).compactMap { $0["id"] as? Int } }

    @Test func readsWritesSecurityAndInjection() async throws {
        let db = try TestDatabase(prefix: "rest")
        defer { db.drop() }
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_alice", "pgbridge_test_bob", "pgbridge_test_anon"))
            CREATE TABLE readings (id int PRIMARY KEY, device text, temp float8, time timestamptz NOT NULL, owner text NOT NULL);
            INSERT INTO readings SELECT g, 'dev-' || (g % 7), (g % 100) + 0.5,
                TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '1 minute',
                CASE WHEN g % 2 = 0 THEN 'pgbridge_test_alice' ELSE 'pgbridge_test_bob' END
              FROM generate_series(1, 1000) g;
            ALTER TABLE readings REPLICA IDENTITY FULL;
            ALTER TABLE readings ENABLE ROW LEVEL SECURITY;
            CREATE POLICY own ON readings USING (owner = current_user) WITH CHECK (owner = current_user);
            GRANT SELECT, INSERT, UPDATE, DELETE ON readings TO pgbridge_test_alice, pgbridge_test_bob;
            GRANT SELECT ON readings TO pgbridge_test_anon;
            CREATE TABLE big (id int PRIMARY KEY, label text);
            INSERT INTO big SELECT g, 'label, "quoted" ' || g FROM generate_series(1, 2500) g;
            GRANT SELECT ON big TO pgbridge_test_alice;
            CREATE TABLE parted (id int, kind text, part int) PARTITION BY LIST (part);
            CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
            CREATE TABLE parted_2 PARTITION OF parted FOR VALUES IN (2);
            INSERT INTO parted VALUES (1, 'a', 1), (2, 'b', 1), (3, 'a', 2), (4, 'b', 2);
            GRANT SELECT, DELETE ON parted TO pgbridge_test_alice;
            CREATE FUNCTION echo_text(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT x $$;
            CREATE TABLE secrets (id int PRIMARY KEY, value text);
            INSERT INTO secrets VALUES (1, 'top secret');
            """)
        let directory = try TestEnvironment.scratchDirectory("rest-\(db.name)")
        #expect(try await BridgeProcess.run(["setup", "--url", db.url], directory: directory).status == 0)
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", admin_token: \(Self.admin), jwt_secret: \(Self.secret),
              anonymous_role: pgbridge_test_anon}
        pipes:
          - name: rest_pipe
            source: {tables: [public.readings], slot: rest_\(db.name)}
            sinks: [{kind: file, path: \(directory)/events.jsonl}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        let alice = APIClient(base: "http://127.0.0.1:\(port)", token: try await token("pgbridge_test_alice"))
        let bob = APIClient(base: "http://127.0.0.1:\(port)", token: try await token("pgbridge_test_bob"))
        let anonymous = APIClient(base: "http://127.0.0.1:\(port)", token: nil)
        let path = "/v1/tables/public.readings"

        // Reads: RLS keeps each role to its rows; filters, order, limit, in, select.
        #expect(ids(try await alice.get("\(path)?select=id&order=id.desc&limit=3")) == [1000, 998, 996])
        #expect(ids(try await bob.get("\(path)?id=lte.5&order=id")) == [1, 3, 5])
        #expect(ids(try await alice.get("\(path)?id=in.(2,4,5)&order=id")) == [2, 4])
        #expect(ids(try await alice.get("/v1/tables/readings?id=lte.4&order=id.asc")) == [2, 4])
        let warm = try await alice.get("\(path)?temp=gte.50&temp=lt.51&device=like.dev-*&order=id&select=id,temp")
        let expected = try db.sql(
            "SELECT id FROM readings WHERE temp >= 50 AND temp < 51 AND owner = 'pgbridge_test_alice' ORDER BY id"
        ).compactMap { $0[0].flatMap { Int($0) } }
        #expect(ids(warm) == expected && !expected.isEmpty)
        #expect(rows(warm).first?.keys.sorted() == ["id", "temp"])
        #expect(rows(try await anonymous.get(path)).isEmpty, "no policy lets the anonymous role see rows")

        // Aggregates over time buckets equal PostgreSQL's own date_bin.
        let buckets = rows(try await alice.get("\(path)?bucket=1h&agg=count(*),max(temp)&time_column=time"))
        let counts = try db.sql(
            """
            SELECT count(*) FROM readings WHERE owner = 'pgbridge_test_alice'
            GROUP BY date_bin('1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') ORDER BY date_bin('1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')
            """
        ).compactMap { $0[0].flatMap { Int($0) } }
        #expect(buckets.compactMap { $0["count"] as? Int } == counts)
        #expect(buckets.allSatisfy { $0["bucket"] is String && $0["max_temp"] is Double })

        // More rows than one fetch: streamed from a cursor in order, as JSON and as CSV.
        #expect(ids(try await alice.get("/v1/tables/public.big?order=id")) == Array(1...2500))
        let bigCSV = try await alice.request(.GET, "/v1/tables/public.big?order=id", headers: [("Accept", "text/csv")])
        let lines = bigCSV.body.split(separator: "\n")
        #expect(lines.count == 2501)
        #expect(lines.last == #"2500,"label, ""quoted"" 2500""#)

        // CSV.
        let csv = try await alice.request(.GET, "\(path)?select=id,device&id=eq.2", headers: [("Accept", "text/csv")])
        #expect(csv.body == "id,device\n2,dev-2\n")
        #expect(csv.headers.first(name: "Content-Type")?.hasPrefix("text/csv") == true)

        // Injection corpus: in values, column names, select, order, the table path. No statement
        // runs besides the intended SELECT, and no row outside the caller's policy comes back.
        let corpus = [
            "'", "''", "';DROP TABLE readings;--", "1 OR 1=1", "1' OR '1'='1", "\" OR \"\"=\"", "\\", "/*", "*/", "--",
            ");SELECT pg_sleep(5);--", "é漢字🙂", "pgbridge_test_bob", "%", "$1", "a\"b",
        ]
        for payload in corpus {
            let encoded = payload.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            for query in ["device=eq.\(encoded)", "owner=eq.\(encoded)", "id=eq.\(encoded)", "device=in.(\(encoded))"] {
                let reply = try await alice.get("\(path)?\(query)")
                #expect(reply.status == 200 || reply.status == 400, "\(query): \(reply.status) \(reply.body)")
                if reply.status == 200 {
                    #expect(rows(reply).allSatisfy { $0["owner"] as? String == "pgbridge_test_alice" })
                }
            }
            for query in ["\(encoded)=eq.1", "select=\(encoded)", "order=\(encoded)", "agg=\(encoded)&bucket=1h"] {
                let reply = try await alice.get("\(path)?\(query)")
                #expect(reply.status == 400, "\(query): \(reply.status) \(reply.body)")
            }
            let table = try await alice.get("/v1/tables/\(encoded)")
            #expect(table.status == 404 || table.status == 400, "table \(payload): \(table.status)")
            // PostgREST's parameters: logic trees, casts, JSON paths, on_conflict, RPC names and
            // arguments, profiles. Values stay values; names are checked or refused.
            let tree = try await alice.get("\(path)?or=(device.eq.\(encoded),owner.eq.\(encoded))")
            #expect(tree.status == 200 || tree.status == 400, "or= \(payload): \(tree.status) \(tree.body)")
            if tree.status == 200 {
                #expect(rows(tree).allSatisfy { $0["owner"] as? String == "pgbridge_test_alice" })
            }
            let cast = try await alice.get("\(path)?select=id::\(encoded)")
            #expect(cast.status == 400, "cast \(payload): \(cast.status) \(cast.body)")
            let jsonPath = try await alice.get("\(path)?select=id,device->>\(encoded)&limit=1")
            #expect([200, 400, 404].contains(jsonPath.status), "json path \(payload): \(jsonPath.status)")
            let conflict = try await alice.request(
                .POST, "\(path)?on_conflict=\(encoded)", body: #"{"id": 7001}"#,
                headers: [("Prefer", "resolution=merge-duplicates")])
            #expect(conflict.status == 400, "on_conflict \(payload): \(conflict.status) \(conflict.body)")
            let function = try await alice.get("/v1/tables/rpc/\(encoded)")
            #expect([400, 404].contains(function.status), "rpc \(payload): \(function.status)")
            let echoed = try await alice.get("/v1/tables/rpc/echo_text?x=\(encoded)")
            #expect(echoed.status == 200, "rpc argument \(payload): \(echoed.status) \(echoed.body)")
            #expect(
                (try? JSONSerialization.jsonObject(with: Data(echoed.body.utf8), options: .fragmentsAllowed)) as? String
                    == payload, "the argument came back as the same value: \(echoed.body)")
            if payload.allSatisfy(\.isASCII) {
                let profile = try await alice.request(
                    .GET, "/v1/tables/readings", headers: [("Accept-Profile", payload)])
                #expect(profile.status == 406, "profile \(payload): \(profile.status) \(profile.body)")
            }
        }
        for schema in ["pgbridge", "pg_catalog", "information_schema"] {
            let profile = try await alice.request(.GET, "/v1/tables/outbox", headers: [("Accept-Profile", schema)])
            #expect(profile.status == 406, "\(schema): \(profile.status)")
            let function = try await alice.request(
                .GET, "/v1/tables/rpc/pg_sleep?seconds=1", headers: [("Accept-Profile", schema)])
            #expect(function.status == 406, "\(schema) functions: \(function.status)")
        }
        #expect(try await alice.get("/v1/tables/rpc/pg_sleep?seconds=5").status == 404, "pg_catalog is not exposed")
        #expect(try db.value("SELECT count(*) FROM readings") == "1000")
        #expect(try await alice.get("/v1/tables/public.secrets").status == 403)
        let ownSchema = try await alice.get("/v1/tables/pgbridge.outbox")
        #expect(
            ownSchema.status == 404 && ownSchema.body.contains("the schema pgbridge is never served"),
            "\(ownSchema.body)")
        // Roles that would escape row-level security are refused, whatever the token says.
        let bypassing = "pgbridge_test_bypass_\(db.name)"
        let replicating = "pgbridge_test_replication_\(db.name)"
        try db.sql(
            """
            CREATE ROLE \(bypassing) BYPASSRLS; CREATE ROLE \(replicating) REPLICATION;
            GRANT SELECT ON readings TO \(bypassing), \(replicating);
            GRANT \(bypassing), \(replicating) TO CURRENT_USER;
            """)
        defer { _ = try? db.sql("DROP OWNED BY \(bypassing), \(replicating); DROP ROLE \(bypassing), \(replicating)") }
        for role in ["none", "postgres", bypassing, replicating] {
            let escalating = APIClient(base: alice.base, token: try await token(role))
            let reply = try await escalating.get(path)
            #expect(reply.status == 403, "role \(role): \(reply.status) \(reply.body)")
            #expect(reply.body.contains("may not be used through the REST proxy"), "role \(role): \(reply.body)")
            // Writes and calls are refused before their statement runs.
            let write = try await escalating.request(
                .POST, path, body: #"{"id": 9001, "time": "2026-02-01T00:00:00Z", "owner": "x"}"#)
            #expect(write.status == 403, "role \(role) write: \(write.status) \(write.body)")
        }
        #expect(try db.value("SELECT count(*) FROM readings WHERE id = 9001") == "0")
        let unknown = try await APIClient(base: alice.base, token: try await token("pgbridge_no_such_role")).get(path)
        #expect(unknown.status == 403 && unknown.body.contains("does not exist"), "\(unknown.status) \(unknown.body)")
        // Without a token, the catalog tells nothing beyond what the anonymous role may read.
        #expect(try await anonymous.get("/v1/tables/public.secrets").status == 401)

        // Writes: a token is required; RLS checks new rows; filters are required.
        try await waitForSlot(db, "rest_\(db.name)")
        #expect(try await anonymous.request(.POST, path, body: #"{"id": 5001}"#).status == 401)
        let forged = APIClient(
            base: alice.base, token: try await token("pgbridge_test_alice", secret: String(repeating: "x", count: 40)))
        #expect(try await forged.get(path).status == 401)
        let expired = APIClient(base: alice.base, token: try await token("pgbridge_test_alice", expires: -60))
        #expect(try await expired.get(path).status == 401)
        // The insert appears in the pipe's SSE stream with the commit LSN of X-Commit-LSN.
        let pipes = APIClient(base: alice.base, token: Self.admin)
        let written = Mutex<(status: Int, lsn: String?, ids: [Int])>((0, nil, []))
        var streamed: [String: Any]?
        try await pipes.stream(
            "/v1/pipes/rest_pipe/stream?op=insert",
            onOpen: {
                let inserted = try await alice.request(
                    .POST, path,
                    body:
                        #"{"id": 5001, "device": "new", "temp": 1.5, "time": "2026-02-01T00:00:00Z", "owner": "pgbridge_test_alice"}"#,
                    headers: [("Prefer", "return=representation")])
                written.withLock {
                    $0 = (inserted.status, inserted.headers.first(name: "X-Commit-LSN"), self.ids(inserted))
                }
            }
        ) { _, data in
            streamed = try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]
            return (streamed?["after"] as? [String: Any])?["id"] as? Int != 5001
        }
        let inserted = written.withLock { $0 }
        #expect(inserted.status == 201)
        #expect(inserted.ids == [5001])
        let commitLSN = try #require(inserted.lsn, "no X-Commit-LSN header")
        #expect((streamed?["source"] as? [String: Any])?["commit_lsn"] as? String == commitLSN)
        let notMine = try await alice.request(
            .POST, path, body: #"[{"id": 5002, "time": "2026-02-01T00:00:00Z", "owner": "pgbridge_test_bob"}]"#)
        #expect(notMine.status == 403, "\(notMine.body)")
        // A form body (what an HTML form or `curl -d a=b` sends) is one object of strings, as
        // in PostgREST; other media types are refused.
        let form = try await alice.request(
            .POST, path, body: "id=5003&time=2026-02-01T00%3A00%3A00Z&owner=pgbridge_test_alice&device=form",
            headers: [("Content-Type", "application/x-www-form-urlencoded")])
        #expect(form.status == 201, "\(form.body)")
        #expect(try db.value("SELECT device FROM readings WHERE id = 5003") == "form")
        let csvBody = try await alice.request(
            .POST, path, body: "id,owner\n5004,pgbridge_test_alice", headers: [("Content-Type", "text/csv")])
        #expect(csvBody.status == 415 && csvBody.json["code"] as? String == "PGRST107", "\(csvBody.body)")
        // A limited delete on a partitioned table takes the first matching rows only (a ctid
        // repeats across partitions).
        let limited = try await alice.request(.DELETE, "/v1/tables/parted?kind=eq.a&order=id&limit=1")
        #expect(limited.status == 204, "\(limited.body)")
        #expect(try db.value("SELECT string_agg(id::text, ',' ORDER BY id) FROM parted") == "2,3,4")
        #expect(try await alice.request(.PATCH, path, body: #"{"temp": 99}"#).status == 400)
        #expect(try await alice.request(.DELETE, path).status == 400)
        let patched = try await alice.request(.PATCH, "\(path)?id=eq.2", body: #"{"temp": 99}"#)
        #expect(patched.status == 204)
        #expect(patched.headers.first(name: "Content-Range") == "0-0/*")
        let hidden = try await bob.request(.PATCH, "\(path)?id=eq.2", body: #"{"temp": -1}"#)
        #expect(hidden.headers.first(name: "Content-Range") == "*/*", "bob cannot touch alice's row")
        #expect(try db.value("SELECT temp FROM readings WHERE id = 2") == "99")
        #expect(try await alice.request(.DELETE, "\(path)?id=eq.4").status == 204)
        #expect(try db.value("SELECT count(*) FROM readings WHERE id = 4") == "0")
        let duplicate = try await alice.request(
            .POST, path, body: #"{"id": 5001, "time": "2026-02-01T00:00:00Z", "owner": "pgbridge_test_alice"}"#)
        #expect(duplicate.status == 409)
        #expect(duplicate.json["code"] as? String == "23505", "PostgREST's error shape: \(duplicate.body)")
        #expect(
            duplicate.json["message"] as? String != nil
                && duplicate.json.keys.sorted() == ["code", "details", "hint", "message"])

        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }

    /// A hypertable's time dimension is the default time column of buckets (date_bin without
    /// the TimescaleDB extension), read from TimescaleDB's catalog (the fixture's stand-in).
    /// PostgreSQL's messages follow `lc_messages`: refusals are classified by SQLSTATE, so a
    /// server answering in German is mapped like one answering in English.
    @Test func refusalsAreClassifiedBySQLStateNotMessageText() async throws {
        let db = try TestDatabase(prefix: "rest_de")
        defer { db.drop() }
        try db.sql(
            "CREATE TABLE t (id int PRIMARY KEY); ALTER DATABASE \(db.name) SET lc_messages = 'de_DE.UTF-8'")
        let directory = try TestEnvironment.scratchDirectory("rest-\(db.name)")
        let german = db.url
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(german)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", admin_token: \(Self.admin), jwt_secret: \(Self.secret)}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        let ghost = APIClient(base: "http://127.0.0.1:\(port)", token: try await token("pgbridge_ghost"))
        let reply = try await ghost.get("/v1/tables/public.t")
        #expect(reply.status == 403, "\(reply.body)")
        #expect(reply.body.contains("pgbridge_ghost"), "\(reply.body)")
        // The server did answer in German (the test would prove nothing otherwise).
        let probe = try PGConnection(url: german, mode: .normal)
        let message: String
        do {
            try probe.execute("SET ROLE pgbridge_ghost")
            message = "no error"
        } catch let error as PostgresError {
            message = error.message
        }
        #expect(message.contains("existiert nicht"), "\(message)")
    }

    /// A table's owner bypasses its row-level security unless it is FORCEd: such a role is
    /// refused as a token role, like a BYPASSRLS one.
    @Test func tableOwnersWithoutForcedRowSecurityAreRefused() async throws {
        let db = try TestDatabase(prefix: "rest_owner")
        defer { db.drop() }
        let owner = "pgbridge_test_owner_\(db.name)"
        try db.sql(
            """
            CREATE ROLE \(owner);
            CREATE TABLE notes (id int PRIMARY KEY, owner text NOT NULL);
            INSERT INTO notes VALUES (1, 'someone else'), (2, '\(owner)');
            ALTER TABLE notes OWNER TO \(owner);
            ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
            CREATE POLICY mine ON notes USING (owner = current_user);
            CREATE TABLE tags (id int PRIMARY KEY, label text, note_id int REFERENCES notes);
            INSERT INTO tags VALUES (1, 'x', 1);
            GRANT SELECT ON tags TO \(owner);
            """)
        defer { _ = try? db.sql("DROP TABLE tags; DROP TABLE notes; DROP ROLE \(owner)") }
        let directory = try TestEnvironment.scratchDirectory("rest-\(db.name)")
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", admin_token: \(Self.admin), jwt_secret: \(Self.secret)}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        let client = APIClient(base: "http://127.0.0.1:\(port)", token: try await token(owner))
        let refused = try await client.get("/v1/tables/public.notes")
        #expect(refused.status == 403, "\(refused.body)")
        #expect(refused.body.contains("FORCE ROW LEVEL SECURITY"), "\(refused.body)")
        // Reaching the same table as an embedded resource is refused the same way.
        let embedded = try await client.get("/v1/tables/public.tags?select=label,notes(*)")
        #expect(embedded.status == 403, "\(embedded.body)")
        #expect(embedded.body.contains("public.notes"), "\(embedded.body)")
        try db.sql("ALTER TABLE notes FORCE ROW LEVEL SECURITY")
        let allowed = try await client.get("/v1/tables/public.notes?order=id")
        #expect(allowed.status == 200, "\(allowed.body)")
        #expect(ids(allowed) == [2], "the policy applies to the owner now: \(allowed.body)")
    }

    /// A migration changes a column's type under the proxy's prepared statements: no request
    /// fails. Each pooled connection prepared the reads (rows and count) and the update with a
    /// parameter typed for the old column; the request that finds them stale runs again with the
    /// statements prepared afresh. A bad value on a prepared statement is not run twice.
    @Test func aColumnTypeChangeUnderPreparedStatementsFailsNoRequest() async throws {
        let db = try TestDatabase(prefix: "rest_migrate")
        defer { db.drop() }
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_anon"))
            CREATE TABLE things (id int PRIMARY KEY, label text, n int);
            INSERT INTO things SELECT g, 'thing ' || g, g FROM generate_series(1, 20) g;
            GRANT SELECT, UPDATE ON things TO pgbridge_test_anon;
            -- Counts the transactions that writes run (a sequence is not rolled back).
            CREATE SEQUENCE calls;
            GRANT USAGE ON SEQUENCE calls TO pgbridge_test_anon;
            CREATE FUNCTION count_call() RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
              IF current_setting('transaction_read_only') = 'off' THEN PERFORM nextval('calls'); END IF;
            END $$;
            """)
        let directory = try TestEnvironment.scratchDirectory("rest-\(db.name)")
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", admin_token: \(Self.admin), anonymous_role: pgbridge_test_anon,
              anonymous_writes: true, pool_size: 3, rest_pre_request: public.count_call}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        let client = APIClient(base: "http://127.0.0.1:\(port)", token: nil)
        let path = "/v1/tables/public.things"
        func calls() throws -> Int {
            Int(try db.sql("SELECT last_value FROM calls").first?[0] ?? "") ?? -1
        }
        /// Six counted reads and six updates at once, so that every pooled connection prepares
        /// the three statements.
        func round(_ label: String) async throws -> [APIClient.Reply] {
            try await withThrowingTaskGroup(of: APIClient.Reply.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        try await client.request(
                            .GET, "\(path)?id=eq.5&select=id,label&limit=5", headers: [("Prefer", "count=exact")])
                    }
                    group.addTask {
                        try await client.request(
                            .PATCH, "\(path)?id=eq.7", body: #"{"label": "\#(label)"}"#,
                            headers: [("Prefer", "return=representation")])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        for reply in try await round("before") {
            #expect(reply.status == 200, "\(reply.body)")
        }
        try db.sql("ALTER TABLE things ALTER COLUMN id TYPE text")
        let beforeMigration = try calls()
        for attempt in 0..<3 {
            for reply in try await round("after \(attempt)") {
                #expect(reply.status == 200, "after the migration: \(reply.status) \(reply.body)")
                #expect(
                    rows(reply).first?["id"] as? String == (reply.body.contains("thing 5") ? "5" : "7"),
                    "the id is text now: \(reply.body)")
            }
        }
        #expect(try db.sql("SELECT label FROM things WHERE id = '7'").first?[0] == "after 2")
        // Some requests found stale statements and ran their transaction twice.
        let transactions = try calls() - beforeMigration
        #expect(transactions > 18, "18 writes, \(transactions) transactions")

        // A bad value for a statement prepared by the request before it (one after the other,
        // so on the same pooled connection) is answered at once, not run again.
        func update(_ n: String) async throws -> APIClient.Reply {
            try await client.request(
                .PATCH, "\(path)?n=eq.\(n)", body: #"{"label": "n"}"#, headers: [("Prefer", "return=representation")])
        }
        #expect(try await update("5").status == 200)
        let beforeBadValue = try calls()
        let refused = try await update("five")
        #expect(refused.status == 400, "\(refused.body)")
        #expect(refused.body.contains("22P02"), "\(refused.body)")
        #expect(try calls() - beforeBadValue == 1, "the refused request ran once")
    }

    @Test func hypertableBucketsUseItsTimeDimension() async throws {
        let db = try TimescaleFixture.conditionsDatabase(prefix: "rest_ht")
        defer { db.drop() }
        try db.sql(
            """
            INSERT INTO conditions SELECT TIMESTAMPTZ '2026-03-01 00:00:00+00' + g * INTERVAL '10 minutes', 'd', g
              FROM generate_series(0, 35) g;
            \(TestDatabase.createRoles("pgbridge_test_reader"))
            GRANT SELECT ON conditions TO pgbridge_test_reader;
            GRANT USAGE ON SCHEMA _timescaledb_internal TO pgbridge_test_reader;
            GRANT SELECT ON ALL TABLES IN SCHEMA _timescaledb_internal TO pgbridge_test_reader;
            """)
        let directory = try TestEnvironment.scratchDirectory("rest-\(db.name)")
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", anonymous_role: pgbridge_test_reader}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let api = APIClient(base: "http://127.0.0.1:\(try await APIClient.waitForPort(bridge))", token: nil)
        let reply = try await api.get("/v1/tables/public.conditions?bucket=1h&agg=count(*),avg(temp)")
        #expect(reply.status == 200, "\(reply.body)")
        let buckets = rows(reply)
        #expect(buckets.compactMap { $0["count"] as? Int } == [6, 6, 6, 6, 6, 6])
        #expect(buckets.first?["avg_temp"] as? Double == 2.5)
        #expect(rows(try await api.get("/v1/tables/public.conditions")).count == 36)
    }
}
