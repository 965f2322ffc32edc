import BridgeCore
import BridgeRuntime
import Foundation
import Pipeline
import Processing
import RedisClient
import RedisSink
import Testing

@Suite(
    "Processors and formats end to end",
    .enabled(if: TestEnvironment.hasPostgres && TestEnvironment.redisURL != nil))
struct ProcessorsTests {
    /// filter + mask + drop + route, Debezium format, a file sink and a Redis stream sink.
    @Test func processorsRouteMaskAndEncodeDebezium() async throws {
        let redisURL = try #require(TestEnvironment.redisURL)
        let db = try TestDatabase(prefix: "processors")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE readings (id int PRIMARY KEY, temp float8, secret text);
            CREATE TABLE orders (id int PRIMARY KEY, email text, total numeric);
            """)
        let config = try BridgeConfig.parse(
            yaml: """
                postgres: {url: "postgresql://x@127.0.0.1/x"}
                pipes:
                  - name: processors
                    source: {tables: [t]}
                    format: debezium
                    processors:
                      - filter: "op != 'delete' or table = 'orders'"
                      - mask: {columns: [email], with: sha256}
                      - drop: [secret]
                      - route: {tables: [public.orders], sinks: [redis], topic: "test:\(db.name):orders-only"}
                    sinks:
                      - {kind: file, path: unused, name: file}
                      - {kind: redis, url: "\(redisURL)", key: "test:\(db.name):{table}", name: redis}
                """, registry: .standard)
        let pipeConfig = config.pipes[0]
        guard let redis = pipeConfig.sinks[1].settings as? RedisSinkConfig else { throw TestFailure("expected redis") }
        let routes = pipeConfig.processors.compactMap { processor -> RouteConfig? in
            if case .route(let route) = processor { return route }
            return nil
        }
        let sink = RedisSink(
            config: redis, client: try RedisClient(config: redis), routeKeys: routes.map(\.destination),
            logger: InProcessPipe.testLogger)
        let pipe = try InProcessPipe(
            database: db, name: "processors", tables: ["public.*"], sinks: [PipeSink(name: "redis", sink: sink)],
            transform: EventTransform(
                pipe: "processors", processors: pipeConfig.processors, format: .debezium, version: "test"),
            routeSinks: routes.map(\.sinks))
        try await pipe.startStreaming(db)
        try db.sql(
            """
            INSERT INTO readings VALUES (1, 20.5, 'hidden'), (2, 21.5, 'hidden');
            DELETE FROM readings WHERE id = 2;
            INSERT INTO orders VALUES (1, 'alice@example.com', 10.50);
            DELETE FROM orders WHERE id = 1;
            """)
        let orders = try await RedisCLI.waitForStream(redisURL, "test:\(db.name):orders-only", count: 2)
        let readings = try await RedisCLI.waitForStream(redisURL, "test:\(db.name):readings", count: 2)
        let file = try await pipe.waitForEvents(count: 2)
        // A sentinel row in a later transaction: once both sinks have it, anything the filter
        // or the route let through by mistake would have arrived before it.
        try db.sql("INSERT INTO readings VALUES (99, 0, 'sentinel')")
        let settledFile = try await pipe.waitForEvents(count: 3)
        let settledReadings = try await RedisCLI.waitForStream(redisURL, "test:\(db.name):readings", count: 3)
        try await pipe.stop()
        #expect(settledFile.count == 3 && settledReadings.count == 3, "\(settledFile)")
        #expect(try RedisCLI.stream(redisURL, "test:\(db.name):orders-only").count == 2)

        // readings: the delete is filtered out; both sinks get the inserts, without `secret`
        #expect(readings.count == 2 && file.count == 2)
        #expect(file.map { $0["op"] as? String } == ["c", "c"])
        #expect(file.allSatisfy { ($0["after"] as? [String: Any])?["secret"] == nil })
        #expect((file.first?["source"] as? [String: Any])?["table"] as? String == "readings")
        // orders: only to Redis, under the route's key, email masked, delete kept
        #expect(orders.map { $0["op"] as? String } == ["c", "d"])
        let email = (orders.first?["after"] as? [String: Any])?["email"] as? String
        #expect(email == "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976")
        #expect(try RedisCLI.run(redisURL, ["EXISTS", "test:\(db.name):orders"]) == ["0"])
        #expect(pipe.events().count == 3)
    }
}

@Suite(
    "pgbridge run with network sinks",
    .enabled(if: TestEnvironment.hasBinary && TestEnvironment.redisURL != nil))
struct BinarySinksTests {
    /// The binary builds sinks from the config: a Redis hash mirror and stream, a masked column,
    /// and rejected events stored in pgbridge.dead_letters.
    @Test func runForwardsToRedisAndDeadLettersIntoTheTable() async throws {
        let redisURL = try #require(TestEnvironment.redisURL)
        let db = try TestDatabase(prefix: "bin_sinks")
        defer { db.drop() }
        try db.sql("CREATE TABLE accounts (id int PRIMARY KEY, email text, plan text)")
        let directory = try TestEnvironment.scratchDirectory("bin_sinks")
        let prefix = "test:\(db.name)"
        _ = try RedisCLI.run(redisURL, ["SET", "\(prefix):accounts:2", "not a hash"])
        let config = (directory as NSString).appendingPathComponent("pgbridge.yaml")
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        pipes:
          - name: accounts
            source: {tables: [public.accounts], slot: \(db.name), publication: \(db.name), status_interval: 1s}
            processors:
              - mask: {columns: [email], with: redact}
            sinks:
              - {kind: redis, name: mirror, url: "\(redisURL)", mode: hash, key: "\(prefix):{table}:{key}", retries: 0}
              - {kind: redis, name: feed, url: "\(redisURL)", mode: stream, key: "\(prefix):feed"}
            dead_letter: {kind: table}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let setup = try await BridgeProcess.run(["setup", "--config", config], directory: directory)
        #expect(setup.status == 0, "\(setup.stderr)")
        let process = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        do {
            try await waitForSlot(db, db.name)
        } catch {
            process.kill(SIGKILL)
            throw TestFailure("\(error); pgbridge's stderr: \(process.stderr.suffix(2000))")
        }
        try db.sql(
            "INSERT INTO accounts VALUES (1, 'a@example.com', 'free'), (2, 'b@example.com', 'pro'), (3, 'c@example.com', 'pro')"
        )
        let deadline = ContinuousClock.now + .seconds(30)
        while try db.value("SELECT count(*) FROM pgbridge.dead_letters") != "1", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let feed = try await RedisCLI.waitForStream(redisURL, "\(prefix):feed", count: 3)
        process.kill(SIGTERM)
        #expect(try await process.waitForExit() == 0, "\(process.stderr)")
        let row = try db.sql("SELECT pipe, sink, reason, attempts, event->'after'->>'id' FROM pgbridge.dead_letters")
        #expect(
            row.first == [
                "accounts", "mirror",
                "Redis replied: WRONGTYPE Operation against a key holding the wrong kind of value", "1", "2",
            ])
        #expect(try RedisCLI.hash(redisURL, "\(prefix):accounts:3") == ["id": "3", "email": "***", "plan": "pro"])
        #expect(feed.count == 3 && feed.allSatisfy { $0.after?["email"] as? String == "***" })
        #expect(!process.stderr.contains("example.com"))
    }

    /// `format: debezium` and processors (filter, mask, drop) built by the binary from the config.
    @Test func debeziumFormatAndProcessorsThroughTheBinary() async throws {
        let db = try TestDatabase(prefix: "bin_dbz")
        defer { db.drop() }
        try db.sql("CREATE TABLE users (id int PRIMARY KEY, email text, secret text, active bool)")
        let directory = try TestEnvironment.scratchDirectory("bin_dbz")
        let output = "\(directory)/events.jsonl"
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        pipes:
          - name: users
            source: {tables: [public.users], slot: \(db.name), publication: \(db.name)}
            format: debezium
            processors:
              - filter: "op != 'delete'"
              - mask: {columns: [email], with: sha256}
              - drop: [secret]
            sinks: [{kind: file, path: \(output)}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        try await waitForSlot(db, db.name)
        try db.sql("INSERT INTO users VALUES (1, 'alice@example.com', 'hidden', true)")
        try db.sql("UPDATE users SET active = false WHERE id = 1")
        try db.sql("DELETE FROM users WHERE id = 1")
        try db.sql("INSERT INTO users VALUES (2, 'bob@example.com', 'hidden', true)")  // the sentinel
        let events = try await EventFile.waitFor(output) { events in
            events.contains { $0.after?["id"] as? Int == 2 }
        }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0, "\(bridge.stderr.suffix(2000))")
        // Debezium's envelope: op c/u (the delete is filtered out), ts_ms, source.table.
        try #require(events.count == 3, "\(events)")
        #expect(events.map { $0["op"] as? String } == ["c", "u", "c"])
        #expect(events.allSatisfy { $0["ts_ms"] is Int && $0.table == "users" })
        #expect(events.allSatisfy { $0.after?["secret"] == nil && $0.after?["email"] is String })
        // sha256("alice@example.com")
        #expect(
            events.first?.after?["email"] as? String
                == "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976")
        #expect(events[1].after?["active"] as? Bool == false)
        #expect(!bridge.stderr.contains("example.com"))
    }

    /// `pgbridge check` connects to network sinks and names the one it cannot reach.
    @Test func checkReportsUnreachableSinks() async throws {
        let db = try TestDatabase(prefix: "check_sinks")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let directory = try TestEnvironment.scratchDirectory("check_sinks")
        let config = (directory as NSString).appendingPathComponent("pgbridge.yaml")
        let redisURL = try #require(TestEnvironment.redisURL)
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        pipes:
          - name: p
            source: {tables: [public.t], slot: \(db.name), publication: \(db.name)}
            sinks:
              - {kind: redis, name: live, url: "\(redisURL)"}
              - {kind: redis, name: dead, url: "redis://127.0.0.1:1/0", timeout: 2s}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try await BridgeProcess.run(["check", "--config", config], directory: directory)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("sink dead:") && result.stderr.contains("cannot connect"), "\(result.stderr)")
        #expect(!result.stderr.contains("sink live:"), "\(result.stderr)")
    }
}
