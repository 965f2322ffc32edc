import BridgeCore
import Foundation
import Pipeline
import RedisClient
import RedisSink
import Testing

@Suite(
    "Redis sink against a real redis-server",
    .enabled(if: TestEnvironment.hasPostgres && TestEnvironment.redisURL != nil))
struct RedisSinkTests {
    let redisURL = TestEnvironment.redisURL ?? ""

    func redisSink(_ yaml: String, url: String? = nil, retries: Int = 1) throws -> PipeSink {
        let sink = try SinkFixture.parse("kind: redis, url: \"\(url ?? redisURL)\", \(yaml)", retries: retries)
        guard let redis = sink.settings as? RedisSinkConfig else { throw TestFailure("expected a redis sink") }
        return PipeSink(
            name: "redis",
            sink: RedisSink(config: redis, client: try RedisClient(config: redis), logger: InProcessPipe.testLogger),
            delivery: sink.delivery)
    }

    /// Nothing listens on port 1: the message says so and what to check.
    @Test func anUnreachableServerIsNamed() async throws {
        let config = try SinkFixture.parse("kind: redis, url: \"redis://127.0.0.1:1/0\"", retries: 0)
        guard let redis = config.settings as? RedisSinkConfig else { throw TestFailure("expected a redis sink") }
        do {
            try await RedisClient(config: redis).open()
            Issue.record("connected to port 1")
        } catch {
            #expect(
                "\(error)".contains("cannot connect: Connection refused. Is Redis running and reachable?"), "\(error)")
        }
    }

    @Test func streamModeAppendsEveryEventInCommitOrder() async throws {
        let db = try TestDatabase(prefix: "redis_stream")
        defer { db.drop() }
        try db.sql("CREATE TABLE readings (id int PRIMARY KEY, temp float8, device text)")
        let key = "test:\(db.name)"
        let pipe = try InProcessPipe(
            database: db, name: "redis_stream", tables: ["public.readings"],
            sinks: [try redisSink("mode: stream, key: \"\(key):{table}\", maxlen: 100000")])
        try await pipe.startStreaming(db)
        try db.sql(
            """
            INSERT INTO readings SELECT g, g * 0.5, 'd-' || (g % 3) FROM generate_series(1, 500) g;
            UPDATE readings SET temp = -1 WHERE id <= 10;
            DELETE FROM readings WHERE id = 500;
            """)
        let events = try await RedisCLI.waitForStream(redisURL, "\(key):readings", count: 511)
        try await pipe.stop()
        #expect(events.count == 511)
        #expect(events.prefix(500).allSatisfy { $0.op == "insert" })
        #expect(events[500].op == "update" && events[500].after?["temp"] as? Double == -1)
        #expect(events[510].op == "delete" && events[510].key?["id"] as? Int == 500)
        let ids = events.compactMap { $0.after?["id"] as? Int }.prefix(500)
        #expect(Array(ids) == Array(1...500))
        let entries = try RedisCLI.stream(redisURL, "\(key):readings")
        #expect(entries[0]["id"] == events[0].eventID && entries[0]["op"] == "insert")
        #expect(pipe.deadLetters().isEmpty)
    }

    @Test func pubsubModePublishesEachEvent() async throws {
        let db = try TestDatabase(prefix: "redis_pubsub")
        defer { db.drop() }
        try db.sql("CREATE TABLE orders (id int PRIMARY KEY, total numeric)")
        let channel = "test:\(db.name):orders"
        let output = try TestEnvironment.scratchDirectory("pubsub") + "/messages.txt"
        _ = try TestEnvironment.shell(
            "(timeout 180 stdbuf -oL redis-cli -u '\(redisURL)' SUBSCRIBE '\(channel)' > '\(output)' 2>&1 &)")
        defer { _ = try? TestEnvironment.shell("pkill -f 'SUBSCRIBE \(channel)'") }
        let deadline = ContinuousClock.now + .seconds(10)
        while (try? String(contentsOfFile: output, encoding: .utf8))?.contains("subscribe") != true {
            guard ContinuousClock.now < deadline else { throw TestFailure("redis-cli did not subscribe") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let pipe = try InProcessPipe(
            database: db, name: "redis_pubsub", tables: ["public.orders"],
            sinks: [try redisSink("mode: pubsub, key: \"test:\(db.name):{table}\"")])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO orders SELECT g, g * 10.5 FROM generate_series(1, 50) g")
        var messages: [[String: Any]] = []
        let readDeadline = ContinuousClock.now + .seconds(30)  // from the insert: start-up can be slow under load
        while messages.count < 50, ContinuousClock.now < readDeadline {
            let lines = (try? String(contentsOfFile: output, encoding: .utf8))?.components(separatedBy: "\n") ?? []
            messages = lines.enumerated().compactMap { index, line in
                guard line == "message", index + 2 < lines.count else { return nil }
                return try? JSONSerialization.jsonObject(with: Data(lines[index + 2].utf8)) as? [String: Any]
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await pipe.stop()
        #expect(messages.count == 50)
        #expect(messages.compactMap { $0.after?["id"] as? Int } == Array(1...50))
        #expect(messages.first?.after?["total"] as? String == "10.5")
    }

    @Test func hashModeMirrorsRows() async throws {
        let db = try TestDatabase(prefix: "redis_hash")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE devices (id int PRIMARY KEY, name text, temp float8, tags jsonb);
            CREATE TABLE other (id int PRIMARY KEY, v text);
            """)
        let prefix = "test:\(db.name)"
        let pipe = try InProcessPipe(
            database: db, name: "redis_hash", tables: ["public.*"],
            sinks: [try redisSink("mode: hash, key: \"\(prefix):{table}:{key}\"")])
        try await pipe.startStreaming(db)
        try db.sql(
            """
            INSERT INTO devices VALUES (1, 'one', 20.5, '{"a": 1}'), (2, 'two', 21, null), (3, 'three', 22, null);
            INSERT INTO other VALUES (1, 'keep');
            UPDATE devices SET name = null, temp = 30 WHERE id = 1;
            UPDATE devices SET id = 20 WHERE id = 2;
            DELETE FROM devices WHERE id = 3;
            """)
        _ = try await pipe.waitForEvents(count: 7)
        try await waitFor { try RedisCLI.run(redisURL, ["EXISTS", "\(prefix):devices:3"]) == ["0"] }
        #expect(try RedisCLI.hash(redisURL, "\(prefix):devices:1") == ["id": "1", "temp": "30", "tags": "{\"a\": 1}"])
        #expect(try RedisCLI.hash(redisURL, "\(prefix):devices:20") == ["id": "20", "name": "two", "temp": "21"])
        #expect(try RedisCLI.run(redisURL, ["EXISTS", "\(prefix):devices:2"]) == ["0"])
        try db.sql("TRUNCATE devices")
        try await waitFor { try RedisCLI.run(redisURL, ["EXISTS", "\(prefix):devices:1"]) == ["0"] }
        #expect(try RedisCLI.run(redisURL, ["EXISTS", "\(prefix):devices:20"]) == ["0"])
        #expect(try RedisCLI.hash(redisURL, "\(prefix):other:1") == ["id": "1", "v": "keep"])
        try await pipe.stop()
    }

    @Test func rejectedCommandGoesToDeadLetterAndThePipeContinues() async throws {
        let db = try TestDatabase(prefix: "redis_dlq")
        defer { db.drop() }
        try db.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
        let prefix = "test:\(db.name)"
        _ = try RedisCLI.run(redisURL, ["SET", "\(prefix):items:2", "not a hash"])  // HSET → WRONGTYPE
        let pipe = try InProcessPipe(
            database: db, name: "redis_dlq", tables: ["public.items"],
            sinks: [try redisSink("mode: hash, key: \"\(prefix):{table}:{key}\"")])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        let letters = try await EventFile.waitFor(pipe.deadLetterPath) { !$0.isEmpty }
        try await waitFor { try RedisCLI.hash(redisURL, "\(prefix):items:3") == ["id": "3", "name": "c"] }
        try await pipe.stop()
        #expect(letters.count == 1)
        let letter = try #require(letters.first)
        #expect(letter["pipe"] as? String == "redis_dlq" && letter["sink"] as? String == "redis")
        #expect((letter["reason"] as? String)?.contains("WRONGTYPE") == true)
        #expect(letter["attempts"] as? Int == 1)  // permanent: no retries
        #expect((letter["event"] as? [String: Any])?.after?["id"] as? Int == 2)
        #expect(try RedisCLI.hash(redisURL, "\(prefix):items:1") == ["id": "1", "name": "a"])
    }

    @Test(.enabled(if: RedisCLI.redis2Control != nil))
    func redisKilledAndRestartedMidStreamLosesNothing() async throws {
        try await OutageLock.holding([.redis2]) {
            let url = try #require(RedisCLI.redis2URL)
            let db = try TestDatabase(prefix: "redis_kill")
            defer { db.drop() }
            try db.sql("CREATE TABLE ticks (id int PRIMARY KEY, v int)")
            let key = "test:\(db.name)"
            let pipe = try InProcessPipe(
                database: db, name: "redis_kill", tables: ["public.ticks"],
                sinks: [try redisSink("mode: stream, key: \"\(key)\", timeout: 2s", url: url)])
            try await pipe.startStreaming(db)
            let inserter = Inserter(url: db.url)
            inserter.start(transactions: 300, rowsPerTransaction: 10, pause: .milliseconds(10), table: "ticks") {
                _, first in
                "INSERT INTO ticks SELECT g, g FROM generate_series(\(first), \(first + 9)) g"
            }
            try await Task.sleep(for: .seconds(1))
            try await RedisCLI.control("kill")
            try await Task.sleep(for: .seconds(2))
            try await RedisCLI.control("start")
            try await inserter.waitUntilDone()
            let events = try await RedisCLI.waitForStreamRows(url, key, ids: Set(1...3000))
            try await pipe.stop()
            let ids = Set(events.compactMap { $0.after?["id"] as? Int })
            #expect(ids.count == 3000, "missing \(3000 - ids.count) rows")
            #expect(ids == Set(1...3000))
            // Commit order: taking each row's first delivery, ids only grow.
            var seen: Set<Int> = []
            let firstDeliveries = events.compactMap { $0.after?["id"] as? Int }.filter { seen.insert($0).inserted }
            #expect(firstDeliveries == firstDeliveries.sorted())
        }
    }
}
