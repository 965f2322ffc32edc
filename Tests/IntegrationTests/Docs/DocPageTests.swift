import Foundation
import JWTKit
import Testing

@testable import PostgresClient
@testable import PostgresSource

extension KafkaClusterSuites {
    /// Each page's shell and SQL examples, in order, against the real binary and services (see
    /// `DocPageRun`). One page at a time: the pages use the same default names (pipe `orders`,
    /// slot `pgbridge_orders`), and two of them the shared Kafka mock cluster.
    @Suite(
        "Documentation pages run", .serialized,
        .enabled(
            if: TestEnvironment.hasBinary && KafkaCLI.brokers != nil && TestEnvironment.redisURL != nil
                && TestEnvironment.rabbitMQURL != nil))
    struct DocPageTests {
        /// The pages whose shell and SQL examples these tests run, in order.
        static let pages = [
            "README.md", "docs/getting-started.md", "docs/http-api.md", "docs/foreign-tables.md", "docs/sources.md",
        ]

        static func suffix() -> String { String(UUID().uuidString.prefix(8).lowercased()) }

        /// README: the configuration (Kafka, Redis and a file; filter, mask, table dead letters)
        /// and `pgbridge setup`, `check`, `run`, `slots` as the README lists them.
        @Test func readme() async throws {
            let db = try TestDatabase(prefix: "doc_readme")
            defer { db.drop() }
            try db.sql(
                """
                CREATE TABLE public.orders (id int PRIMARY KEY, total numeric, email text);
                CREATE SCHEMA sales;
                CREATE TABLE sales.refunds (id int PRIMARY KEY, total numeric);
                """)
            let run = try DocPageRun(page: "README.md", label: "readme")
            let topicPrefix = "doc_readme_\(Self.suffix())"
            let brokers = try #require(KafkaCLI.brokers)
            let redis = try #require(TestEnvironment.redisURL)
            try KafkaCLI.control("topic \(topicPrefix).public.orders 1")
            run.rewrite(#"postgresql://\S+"#, db.url)
            run.rewrite("/var/lib/pgbridge", run.directory)
            run.rewrite("kafka1:9092,kafka2:9092", brokers)
            run.rewrite("redis://127.0.0.1:6379/0", redis)
            run.rewrite(#"pg\.\{schema\}"#, "\(topicPrefix).{schema}")
            try run.yaml(containing: "pipes:").write(
                toFile: run.directory + "/pgbridge.yaml", atomically: true, encoding: .utf8)
            let file = run.directory + "/orders.jsonl"
            var outputs: [String: String] = [:]
            try await run.forEachBlock { _, text in
                outputs = try await run.pgbridge(text) { _ in
                    // The filter drops the second row (total 0); the mask hides the e-mail.
                    try db.sql(
                        "INSERT INTO public.orders VALUES (1, 12.5, 'ann@example.com'), (2, 0, 'bob@example.com')")
                    try await waitFor("the order in the file sink") { !EventFile.read(file).isEmpty }
                }
            }
            let events = EventFile.read(file)
            #expect(events.map { $0.after?["id"] as? Int } == [1])
            let email = try #require(events.first?.after?["email"] as? String)
            #expect(email != "ann@example.com" && email.count == 64, "masked with sha256: \(email)")
            let messages = try await KafkaCLI.waitForMessages("\(topicPrefix).public.orders", count: 1)
            #expect(messages.count == 1 && messages.first?.value.contains(email) == true)
            let eventID = try #require(events.first?.eventID)
            #expect(try RedisCLI.stream(redis, "pg:public.orders").contains { $0["id"] == eventID })
            #expect(outputs["slots"]?.contains("pgbridge_orders") == true, "\(outputs["slots"] ?? "")")
            #expect(try db.value("SELECT count(*) FROM pgbridge.dead_letters") == "0")
        }

        /// getting-started: the role and publication a superuser creates, `pgbridge setup`, then
        /// `check` and `run` as that role with the file sink on standard output.
        @Test func gettingStarted() async throws {
            let db = try TestDatabase(prefix: "doc_start")
            let role = "doc_start_\(Self.suffix())"
            defer { db.drop(roles: [role]) }
            try db.sql("CREATE TABLE public.orders (id int PRIMARY KEY)")
            let run = try DocPageRun(page: "docs/getting-started.md", label: "start")
            run.rewrite(#"ROLE pgbridge\b"#, "ROLE \(role)")
            run.rewrite(#"TO pgbridge;"#, "TO \(role);")
            let roleURL = db.url.replacing(/\/\/[^@\/]*@/, with: "//\(role):${PGPASSWORD}@")
            run.rewrite(#"postgresql://pgbridge:\$\{PGPASSWORD\}@db\.internal:5432/app"#, roleURL)
            run.rewrite(#"\$\{PGPASSWORD\}"#, "change-me")
            run.rewrite(#"postgresql://postgres@db\.internal:5432/app"#, db.url)
            run.rewrite("/var/lib/pgbridge", run.directory)
            try run.yaml(containing: "pipes:").write(
                toFile: run.directory + "/pgbridge.yaml", atomically: true, encoding: .utf8)
            var printed = ""
            try await run.forEachBlock { block, text in
                if block.language == "sql" {
                    try db.sql(text)
                    return
                }
                let outputs = try await run.pgbridge(text) { bridge in
                    try db.sql("INSERT INTO public.orders VALUES (42)")
                    try await waitFor("the change on standard output") { bridge.stdout.contains("\"id\":42") }
                }
                printed = outputs["run"] ?? ""
            }
            #expect(try db.value("SELECT rolsuper::text FROM pg_roles WHERE rolname = '\(role)'") == "false")
            let line = try #require(printed.split(separator: "\n").first { $0.contains("\"id\":42") })
            let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(event.op == "insert" && event.table == "orders")
            #expect(try db.value("SELECT to_regclass('pgbridge.dead_letters') IS NOT NULL") == "t", "setup ran")
        }

        struct Claims: JWTPayload {
            var role: String
            var devices: String
            var exp: ExpirationClaim
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }

        /// http-api: health, pipe management, pulling and SSE, then the REST proxy's table, role
        /// and policy, reads and writes with a JWT, as the page shows them with curl.
        @Test func httpAPI() async throws {
            let db = try TestDatabase(prefix: "doc_http")
            let webUser = "doc_web_\(Self.suffix())"
            defer { db.drop(roles: [webUser]) }
            try db.sql("CREATE TABLE public.orders (id int PRIMARY KEY, total numeric)")
            let run = try DocPageRun(page: "docs/http-api.md", label: "http")
            #expect(try await BridgeProcess.run(["setup", "--url", db.url], directory: run.directory).status == 0)
            let admin = "doc-admin-token-0123456789"
            let secret = "doc-jwt-secret-0123456789abcdef0123456789"
            run.rewrite("127.0.0.1:8080", "127.0.0.1:0")
            run.rewrite(#"\$\{PGBRIDGE_ADMIN_TOKEN\}"#, admin)
            let config = """
                postgres: {url: "\(db.url)"}
                state_dir: \(run.directory)/state
                \(try run.yaml(containing: "api:"))
                  jwt_secret: \(secret)
                pipes:   # a pipe of the file, as the page's reader has (metrics show its slot)
                  - name: audit
                    source: {tables: [public.orders], slot: doc_audit_\(Self.suffix())}
                    sinks: [{kind: file, path: \(run.directory)/audit.jsonl}]
                """
            try config.write(toFile: run.directory + "/pgbridge.yaml", atomically: true, encoding: .utf8)
            let bridge = try BridgeProcess(
                arguments: ["run", "--config", run.directory + "/pgbridge.yaml"], directory: run.directory)
            defer { bridge.kill(SIGKILL) }
            let port = try await APIClient.waitForPort(bridge)
            let api = APIClient(base: "http://127.0.0.1:\(port)", token: admin)
            let keys = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            let jwt = try await keys.sign(
                Claims(role: webUser, devices: "a,b", exp: .init(value: Date().addingTimeInterval(600))))
            run.exports = ["PGBRIDGE_ADMIN_TOKEN": admin, "JWT": jwt]
            run.rewrite("localhost:8080", "127.0.0.1:\(port)")
            run.rewrite("redis://127.0.0.1:6379/0", try #require(TestEnvironment.redisURL))
            run.rewrite(#"\bweb_user\b"#, webUser)
            run.rewrite(#"TO pgbridge;"#, "TO CURRENT_USER;")

            var outputs: [String] = []
            try await run.forEachBlock { _, text in
                if text.contains("CREATE ROLE") {
                    try db.sql(text)
                    try db.sql(
                        "INSERT INTO public.conditions VALUES ('2025-06-01T00:00:00Z', 'a', 31), ('2025-06-01T00:01:00Z', 'c', 40)"
                    )
                    return
                }
                var text = text
                if text.contains("after=") {
                    // The page's cursor is an example: continue from the first page's `next`.
                    try db.sql("INSERT INTO public.orders VALUES (1, 10)")
                    let page = try await waitForEvents(api, count: 1)
                    let next = try #require(page["next"] as? String)
                    let cursor = try #require(next.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
                    text = text.replacing(/after=[^&']*/, with: "after=\(cursor)")
                }
                var updates: Task<Void, any Error>?
                if text.contains("curl -N") {
                    // Changes while the stream is open (it shows live changes only): one a second
                    // until the block ends.
                    let url = db.url
                    updates = Task {
                        var total = 11
                        while !Task.isCancelled {
                            try await Task.sleep(for: .seconds(1))
                            let statement = "UPDATE public.orders SET total = \(total)"
                            try await TestEnvironment.offPool {
                                _ = try PGConnection(url: url, mode: .normal).execute(statement)
                            }
                            total += 1
                        }
                    }
                }
                defer { updates?.cancel() }
                if text.contains("/readyz") {
                    try await waitFor("/metrics to report the slot lag") {
                        try await api.get("/metrics").body.contains("pgbridge_slot_lag_bytes")
                    }
                }
                outputs.append(try await run.shell(text))
            }
            let all = outputs.joined(separator: "\n")
            #expect(outputs.first?.contains("\"status\"") == true, "\(outputs.first ?? "")")
            #expect(all.contains("\"origin\":\"api\"") || all.contains("\"origin\": \"api\""), "the created pipe")
            #expect(all.contains("event: change"), "the SSE stream carried the update: \(all.suffix(2000))")
            #expect(all.lowercased().contains("x-commit-lsn:"), "the insert answered X-Commit-LSN")
            #expect(all.contains("\"device\":\"a\""), "the REST read saw device a")
            #expect(!all.contains("\"device\":\"c\""), "the policy hid device c")
            #expect(
                try db.value("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgbridge_orders'") == "0")
            #expect(
                try db.value("SELECT temp::text FROM public.conditions WHERE time = '2026-11-21T10:00:00Z'") == "22")
        }

        func waitForEvents(_ api: APIClient, count: Int) async throws -> [String: Any] {
            var page: [String: Any] = [:]
            try await waitFor("\(count) buffered events of pipe orders") {
                page = try await api.get("/v1/pipes/orders/events?limit=100").json
                return (page["events"] as? [Any])?.count ?? 0 >= count
            }
            return page
        }

        /// sources: the ingestion walk-through, a Kafka topic into a hypertable (the TimescaleDB
        /// catalog fixture stands for the extension the page assumes), as written.
        @Test func sources() async throws {
            let db = try TestDatabase(prefix: "doc_sources")
            defer { db.drop() }
            try db.sql(TimescaleFixture.sql)
            let run = try DocPageRun(page: "docs/sources.md", label: "sources")
            let topic = "doc_sources_\(Self.suffix())"
            try KafkaCLI.control("topic \(topic) 1")
            run.rewrite("sensor-readings", topic)
            run.rewrite("127.0.0.1:9092", try #require(KafkaCLI.brokers))
            run.rewrite(#"postgresql://\S+"#, db.url)
            try run.yaml(containing: "# ingest.yaml").write(
                toFile: run.directory + "/ingest.yaml", atomically: true, encoding: .utf8)
            var selected: [[String?]] = []
            try await run.forEachBlock { block, text in
                switch block.language {
                case "sql": selected = try db.sql(text)
                case "sh" where text.hasPrefix("pgbridge"):
                    try await run.pgbridge(text, ready: "reading kafka topics") { _ in
                        try await waitFor("the readings and their history", timeout: .seconds(60)) {
                            (try? db.value("SELECT count(*) FROM readings_history")) == "3"
                                && (try? db.value("SELECT count(*) FROM readings")) == "3"
                        }
                    }
                default: try await run.shell(text)
                }
            }
            #expect(selected == [["3"]], "the history has one row per message")
            #expect(
                try db.sql("SELECT device, time::text, temperature::text FROM readings ORDER BY time, device") == [
                    ["d1", "2026-12-06 10:00:00+00", "21.5"], ["d2", "2026-12-06 10:00:00+00", "19"],
                    ["d1", "2026-12-06 10:01:00+00", "21.7"],
                ])
            #expect(
                try db.value("SELECT count(*) FROM ONLY readings") == "0", "the rows are in the hypertable's chunks")
        }

        /// foreign-tables: pgbridge's wire configuration (Kafka, Redis, RabbitMQ, a pipe), the
        /// mount as a non-superuser role given USAGE on postgres_fdw, the manual mount in another
        /// database, the queries, the writes and the trigger, in the page's order.
        @Test func foreignTables() async throws {
            let db = try TestDatabase(prefix: "doc_fdw")
            let manual = try TestDatabase(prefix: "doc_fdw_manual")
            let suffix = Self.suffix()
            let owner = "doc_app_owner_\(suffix)"
            let stream = "doc_sensor_\(suffix)"
            let queue = "doc_alerts_\(suffix)"
            defer {
                manual.drop()
                db.drop(roles: [owner])
            }
            let brokers = try #require(KafkaCLI.brokers)
            let redis = try #require(TestEnvironment.redisURL)
            let rabbit = try #require(TestEnvironment.rabbitMQURL)
            let run = try DocPageRun(page: "docs/foreign-tables.md", label: "fdw")

            // What the page's reader has: topics, a stream and a queue with messages, local tables.
            for (topic, partitions) in [("sensor_readings", 2), ("orders", 1), ("raw_lines", 1)] {
                try KafkaCLI.control("topic \(topic) \(partitions)")
            }
            try "dev-0|{\"temp\": 19}\ndev-1|{\"temp\": 21}\n".write(
                toFile: run.directory + "/readings.txt", atomically: true, encoding: .utf8)
            let produced = try await TestEnvironment.shellAsync(
                "kcat -P -b '\(brokers)' -t sensor_readings -p 0 -K '|' -l '\(run.directory)/readings.txt'")
            #expect(produced.status == 0, "\(produced.output)")
            _ = try RedisCLI.run(redis, ["XADD", stream, "*", "temp", "20.5"])
            let declared = try await TestEnvironment.shellAsync(
                "amqp-declare-queue --url='\(rabbit)' -q '\(queue)' -d && amqp-publish --url='\(rabbit)' -r '\(queue)' -b '{\"level\": \"low\"}'"
            )
            #expect(declared.status == 0, "\(declared.output)")
            try db.sql(
                """
                CREATE EXTENSION pgbridge;
                CREATE ROLE \(owner) NOLOGIN;
                ALTER DATABASE \(db.name) OWNER TO \(owner);   -- the application's owner role
                CREATE TABLE devices (name text PRIMARY KEY, site text);
                INSERT INTO devices VALUES ('dev-0', 'north'), ('dev-1', 'south');
                CREATE TABLE orders (id int PRIMARY KEY, item text);
                ALTER TABLE devices OWNER TO \(owner);
                ALTER TABLE orders OWNER TO \(owner);
                CREATE TABLE conditions (time timestamptz NOT NULL, device text NOT NULL, temp float8,
                                         PRIMARY KEY (time, device));
                """)

            run.rewrite(#"postgresql://\S+"#, db.url)
            run.rewrite("127.0.0.1:6433", "127.0.0.1:0")
            run.rewrite("kafka1:9092,kafka2:9092", brokers)
            run.rewrite("redis://127.0.0.1:6379/0", redis)
            run.rewrite("amqp://guest:guest@127.0.0.1:5672/", rabbit)
            run.rewrite(#"\$\{PGBRIDGE_WIRE_PASSWORD\}"#, "the-wire-password")
            run.rewrite(#"\$\{PGBRIDGE_LOADER_PASSWORD\}"#, "loader-password-1")
            run.rewrite(#"\$\{PGBRIDGE_AUDITOR_PASSWORD\}"#, "auditor-password-1")
            run.rewrite(#"\bsensor\b"#, stream)
            run.rewrite(#"\balerts\b"#, queue)
            run.rewrite(#"\bapp_owner\b"#, owner)
            let config = """
                \(try run.yaml(containing: "wire:"))
                state_dir: \(run.directory)/state
                pipes:   # the pipe whose events ext_pipes.conditions shows
                  - name: conditions
                    source: {tables: [public.conditions], slot: doc_fdw_\(suffix)}
                    sinks: [{kind: file, path: \(run.directory)/conditions.jsonl}]
                """
            try config.write(toFile: run.directory + "/pgbridge.yaml", atomically: true, encoding: .utf8)
            let bridge = try BridgeProcess(
                arguments: ["run", "--config", run.directory + "/pgbridge.yaml"], directory: run.directory)
            defer { bridge.kill(SIGKILL) }
            let port = try await KafkaClusterSuites.ForeignTablesTests.waitForWirePort(bridge)
            run.rewrite(#"\b6433\b"#, String(port))
            try await bridge.waitForLog("streaming changes")
            try db.sql("INSERT INTO conditions VALUES (now(), 'dev-0', 20.5)")
            try await waitFor("the pipe's event") { !EventFile.read(run.directory + "/conditions.jsonl").isEmpty }

            let session = try PGConnection(url: db.url, mode: .normal)
            try await run.forEachBlock { _, text in
                if text.contains("CREATE SERVER bridge") {
                    // The manual mount is the alternative to mount_bridge: another database.
                    try manual.sql(text)
                    #expect(try manual.value("SELECT count(*) FROM ext_kafka.sensor_readings") == "2")
                    return
                }
                if text.hasPrefix("SELECT pgbridge.mount_bridge") {
                    // "Then, as that role": no superuser from here on.
                    _ = try session.execute("SET ROLE \(owner)")
                }
                _ = try session.execute(text)
            }
            func value(_ query: String) throws -> String? {
                let result = try session.execute(query)
                return result.rowCount > 0 ? result.string(0, 0) : nil
            }
            #expect(try value("SELECT current_user") == owner)
            #expect(try value("SELECT count(*) FROM ext_pipes.conditions") == "1")
            #expect(try value("SELECT count(*) FROM ext_redis.\(stream)") == "2")
            #expect(try value("SELECT count(*) FROM ext_rabbitmq.\(queue)") == "2")
            // The trigger publishes each new order.
            _ = try session.execute("INSERT INTO orders VALUES (7, 'lamp')")
            let orders = try await KafkaCLI.waitForMessages("orders", count: 1)
            #expect(orders.map(\.key) == ["7"])
            let readings = try await KafkaCLI.consume("sensor_readings")
            #expect(readings.count == 3 && readings.contains { $0.headers.contains("source=sql") })
            bridge.kill(SIGTERM)
            #expect(try await bridge.waitForExit() == 0)
        }
    }
}
