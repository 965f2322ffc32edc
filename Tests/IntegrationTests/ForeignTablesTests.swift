import Foundation
import Testing

extension KafkaClusterSuites {
    /// postgres_fdw in a real PostgreSQL, through the real pgbridge binary, on the mock Kafka
    /// cluster, real Redis and real RabbitMQ.
    @Suite(
        "Foreign tables through postgres_fdw", .serialized,
        .enabled(
            if: TestEnvironment.hasBinary && KafkaCLI.brokers != nil && TestEnvironment.redisURL != nil
                && TestEnvironment.rabbitMQURL != nil))
    struct ForeignTablesTests {
        static let password = "fdw-test-password-1"

        struct Setup {
            let database: TestDatabase
            let bridge: BridgeProcess
            let port: Int
            let topic: String
            let stream: String
            let queue: String
            let directory: String
            let events: String
            let slot: String
        }

        static func waitForWirePort(_ bridge: BridgeProcess) async throws -> Int {
            var port: Int?
            try await waitFor("pgbridge to listen for postgres_fdw", timeout: .seconds(60)) {
                guard bridge.isRunning else { throw TestFailure("pgbridge exited: \(bridge.stderr.suffix(3000))") }
                for line in bridge.stderr.split(separator: "\n")
                where line.contains("wire protocol (postgres_fdw) listening") {
                    if let match = line.firstMatch(of: /127\.0\.0\.1:(\d+)/) { port = Int(match.1) }
                }
                return port != nil
            }
            return port!
        }

        /// A topic (2 partitions: 20 messages in 0, 3 in 1), a stream (10 entries), a queue (3
        /// messages), a pipe on `items`, and pgbridge serving them; the database has them mounted.
        static func start(_ label: String) async throws -> Setup {
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let topic = "wire_\(label)_\(suffix)"
            let stream = "wire:\(label):\(suffix)"
            let queue = "wire_\(label)_\(suffix)"
            let brokers = KafkaCLI.brokers!
            let redis = TestEnvironment.redisURL!
            let rabbit = TestEnvironment.rabbitMQURL!
            try KafkaCLI.control("topic \(topic) 2")
            var lines = ""
            for index in 0..<20 { lines += "dev-\(index % 2)|{\"n\": \(index), \"temp\": \(20 + index)}\n" }
            let directory = try TestEnvironment.scratchDirectory("fdw-\(label)")
            try lines.write(toFile: directory + "/p0.txt", atomically: true, encoding: .utf8)
            try "dev-7|{\"n\": 100}\ndev-7|{\"n\": 101}\ndev-7|not json\n".write(
                toFile: directory + "/p1.txt", atomically: true, encoding: .utf8)
            for (partition, file) in [(0, "p0.txt"), (1, "p1.txt")] {
                let result = try await TestEnvironment.shellAsync(
                    "kcat -P -b '\(brokers)' -t '\(topic)' -p \(partition) -K '|' -H source=test -l '\(directory)/\(file)'"
                )
                guard result.status == 0 else { throw TestFailure("kcat -P failed: \(result.output)") }
            }
            for index in 1...10 {
                _ = try RedisCLI.run(
                    redis, ["XADD", stream, "\(index * 100)-0", "device", "d\(index % 3)", "temp", "\(index)"])
            }
            let declare = try await TestEnvironment.shellAsync(
                "amqp-declare-queue --url='\(rabbit)' -q '\(queue)' -d && for i in 1 2 3; do amqp-publish --url='\(rabbit)' -r '\(queue)' -b \"{\\\"i\\\": $i}\" || exit 1; done"
            )
            guard declare.status == 0 else { throw TestFailure("amqp-tools failed: \(declare.output)") }

            let database = try TestDatabase(prefix: "fdw_\(label)")
            try database.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
            let events = directory + "/events.jsonl"
            let slot = "fdw_\(suffix)"
            let config = directory + "/pgbridge.yaml"
            try """
            postgres:
              url: \(database.url)
            state_dir: \(directory)/state
            wire:
              listen: 127.0.0.1:0
              users:
                bridge: {password: \(password), read: ["*", pipes.items_pipe], write: ["*"]}
              kafka: {brokers: "\(brokers)", topics: [{name: \(topic), value: json}]}
              redis: {url: "\(redis)", streams: ["\(stream)"]}
              rabbitmq: {url: "\(rabbit)", queues: [\(queue)]}
            pipes:
              - name: items_pipe
                source: {kind: replication, tables: [public.items], slot: \(slot), publication: \(slot)}
                sinks: [{kind: file, path: \(events)}]
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
            let port = try await waitForWirePort(bridge)
            try database.sql(
                """
                CREATE EXTENSION postgres_fdw;
                CREATE EXTENSION pgbridge;
                SELECT pgbridge.mount_bridge('127.0.0.1', \(port), 'bridge', '\(password)');
                CREATE TABLE devices (name text PRIMARY KEY, site text);
                INSERT INTO devices VALUES ('dev-0', 'north'), ('dev-1', 'south');
                """)
            return Setup(
                database: database, bridge: bridge, port: port, topic: topic, stream: stream, queue: queue,
                directory: directory, events: events, slot: slot)
        }

        static func stop(_ setup: Setup) async {
            setup.bridge.kill(SIGTERM)
            _ = try? await setup.bridge.waitForExit()
            setup.database.drop()
        }

        @Test func kafkaTopicsAreTablesForSelectJoinAndInsert() async throws {
            let setup = try await Self.start("kafka")
            defer { Task { await Self.stop(setup) } }
            let db = setup.database
            let table = "ext_kafka.\(setup.topic)"
            let imported = try db.sql(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'ext_kafka' AND table_name = '\(setup.topic)' ORDER BY ordinal_position"
            )
            #expect(
                imported.map { "\($0[0]!) \($0[1]!)" } == [
                    "partition integer", "offset bigint", "timestamp timestamp with time zone", "key text",
                    "value jsonb",
                    "headers jsonb",
                ], "\(imported)")
            #expect(try db.value("SELECT count(*) FROM \(table)") == "23")
            let range = try db.sql(
                "SELECT \"offset\", key, value->>'n' FROM \(table) WHERE partition = 0 AND \"offset\" >= 5 AND \"offset\" < 8 ORDER BY \"offset\""
            )
            #expect(
                range.map { "\($0[0]!) \($0[1]!) \($0[2]!)" } == ["5 dev-1 5", "6 dev-0 6", "7 dev-1 7"], "\(range)")
            let latest = try db.sql(
                "SELECT \"offset\" FROM \(table) WHERE partition = 0 ORDER BY \"offset\" DESC LIMIT 3")
            #expect(latest.map { $0[0]! } == ["19", "18", "17"])
            let joined = try db.sql(
                "SELECT d.site, count(*), max((k.value->>'temp')::int) FROM \(table) k JOIN devices d ON d.name = k.key GROUP BY d.site ORDER BY 1"
            )
            #expect(joined.map { "\($0[0]!) \($0[1]!) \($0[2]!)" } == ["north 10 38", "south 10 39"], "\(joined)")
            let other = try db.sql(
                "SELECT value, headers->>'source' FROM \(table) WHERE partition = 1 AND key = 'dev-7' ORDER BY \"offset\""
            )
            #expect(
                other.map { "\($0[0]!) \($0[1]!)" } == ["{\"n\": 100} test", "{\"n\": 101} test", "\"not json\" test"],
                "\(other)")
            let recent = try db.value(
                "SELECT count(*) FROM \(table) WHERE \"timestamp\" > now() - interval '1 hour' AND \"timestamp\" <= now()"
            )
            #expect(recent == "23")

            let inserted = try db.sql(
                "INSERT INTO \(table) (key, value, headers) VALUES ('dev-9', '{\"n\": 99}', '{\"origin\": \"sql\"}') RETURNING partition, \"offset\""
            )
            #expect(inserted.count == 1 && inserted[0][1] != nil, "\(inserted)")
            let messages = try await KafkaCLI.waitForMessages(setup.topic, count: 24)
            let written = messages.first { $0.key == "dev-9" }
            #expect(
                written?.value == "{\"n\": 99}" && written?.headers.contains("origin=sql") == true,
                "\(messages.suffix(3))")
            #expect(written.map { "\($0.partition) \($0.offset)" } == "\(inserted[0][0]!) \(inserted[0][1]!)")

            // A trigger publishes with the statement; a rollback does not take it back.
            try db.sql(
                """
                CREATE TABLE orders (id int PRIMARY KEY, amount int);
                CREATE FUNCTION publish_order() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO \(table) (key, value) VALUES ('order-' || NEW.id, row_to_json(NEW)::jsonb);
                    RETURN NEW;
                END $$;
                CREATE TRIGGER publish AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION publish_order();
                """)
            try db.sql("BEGIN; INSERT INTO orders VALUES (1, 250);")
            let during = try await KafkaCLI.consume(setup.topic)
            #expect(during.contains { $0.key == "order-1" && $0.value.contains("250") }, "published before COMMIT")
            try db.sql("ROLLBACK")
            #expect(try db.value("SELECT count(*) FROM orders") == "0")
            #expect(try await KafkaCLI.consume(setup.topic).contains { $0.key == "order-1" })

            // A condition pgbridge cannot evaluate: a clear error in psql.
            let refused = try await TestEnvironment.shellAsync(
                "psql '\(db.url)' -X -c \"SELECT key FROM \(table) WHERE md5(key) = 'x'\"")
            #expect(refused.status != 0)
            #expect(
                refused.output.contains("pgbridge cannot evaluate the function md5() in a query on its tables"),
                "\(refused.output)")
            let offsetWrite = try await TestEnvironment.shellAsync(
                "psql '\(db.url)' -X -c \"INSERT INTO \(table) (\\\"offset\\\", value) VALUES (5, '{}')\"")
            #expect(
                offsetWrite.output.contains("cannot insert into column \"offset\": Kafka assigns offsets"),
                "\(offsetWrite.output)")
        }

        @Test func redisStreamsRabbitMQQueuesAndPipes() async throws {
            let setup = try await Self.start("mixed")
            defer { Task { await Self.stop(setup) } }
            let db = setup.database
            let stream = "ext_redis.\"\(setup.stream)\""
            let ranged = try db.sql(
                "SELECT id, fields->>'temp' FROM \(stream) WHERE id >= '300-0' AND id < '600-0' ORDER BY id")
            #expect(ranged.map { "\($0[0]!) \($0[1]!)" } == ["300-0 3", "400-0 4", "500-0 5"], "\(ranged)")
            #expect(try db.value("SELECT count(*) FROM \(stream) WHERE fields->>'device' = 'd1'") == "4")
            let added = try db.value(
                "INSERT INTO \(stream) (fields) VALUES ('{\"device\": \"d9\", \"temp\": \"30\"}') RETURNING id")
            let entries = try RedisCLI.run(TestEnvironment.redisURL!, ["XRANGE", setup.stream, "-", "+"])
            #expect(entries.contains(added ?? "missing") && entries.contains("d9"), "\(entries.suffix(6))")
            #expect(try db.value("SELECT fields->>'temp' FROM \(stream) WHERE id = '\(added ?? "")'") == "30")

            let queue = "ext_rabbitmq.\(setup.queue)"
            for _ in 0..<2 {
                let peeked = try db.sql("SELECT position, routing_key, body FROM \(queue) ORDER BY position")
                #expect(
                    peeked.map { "\($0[0]!) \($0[1]!) \($0[2]!)" } == [
                        "1 \(setup.queue) {\"i\": 1}", "2 \(setup.queue) {\"i\": 2}", "3 \(setup.queue) {\"i\": 3}",
                    ], "\(peeked)")
            }
            // Through the default exchange a routing key is a queue name: only this table's queue.
            let elsewhere = try await TestEnvironment.shellAsync(
                "psql '\(db.url)' -X -c \"INSERT INTO \(queue) (routing_key, body) VALUES ('another_queue', 'x')\"")
            #expect(elsewhere.output.contains("publishes to queue \(setup.queue) only"), "\(elsewhere.output)")
            try db.sql("INSERT INTO \(queue) (body, headers) VALUES ('{\"i\": 4}', '{\"origin\": \"sql\"}')")
            let consumed = try await AMQPCLI.consume(TestEnvironment.rabbitMQURL!, queue: setup.queue, count: 4)
            #expect(consumed.compactMap { $0["i"] as? Int } == [1, 2, 3, 4], "\(consumed)")

            // Changes count from the moment the pipe streams (its slot may wait for other
            // transactions of the cluster before it exists).
            try await waitForSlot(db, setup.slot)
            try db.sql("INSERT INTO items VALUES (1, 'one'), (2, 'two'); UPDATE items SET name = 'uno' WHERE id = 1")
            try await waitFor("the pipe's events in pipes.items_pipe", timeout: .seconds(60)) {
                (try? db.value("SELECT count(*) FROM ext_pipes.items_pipe")) == "3"
            }
            let events = try db.sql(
                "SELECT op, \"table\", after->>'name', commit_lsn IS NOT NULL FROM ext_pipes.items_pipe ORDER BY commit_lsn, id"
            )
            #expect(
                events.map { "\($0[0]!) \($0[1]!) \($0[2]!) \($0[3]!)" } == [
                    "insert items one t", "insert items two t", "update items uno t",
                ], "\(events)")

            // mount_bridge again: the same tables, re-imported (a refresh after configuration changes).
            let before = try db.value("SELECT count(*) FROM pg_foreign_table")
            try db.sql("SELECT pgbridge.mount_bridge('127.0.0.1', \(setup.port), 'bridge', '\(Self.password)')")
            #expect(try db.value("SELECT count(*) FROM pg_foreign_table") == before)
            #expect(try db.value("SELECT count(*) FROM \(queue)") == "0")

            // Unknown tables, wrong passwords: clear errors; pgbridge keeps serving.
            try db.sql(
                "CREATE FOREIGN TABLE ext_kafka.nope (key text) SERVER pgbridge_wire OPTIONS (schema_name 'kafka', table_name 'nope')"
            )
            let missing = try await TestEnvironment.shellAsync("psql '\(db.url)' -X -c 'SELECT * FROM ext_kafka.nope'")
            #expect(missing.output.contains("relation \"kafka.nope\" does not exist"), "\(missing.output)")
            let wrong = try await TestEnvironment.shellAsync(
                "PGPASSWORD=wrong-password psql 'host=127.0.0.1 port=\(setup.port) user=bridge dbname=pgbridge' -X -c 'SELECT 1'"
            )
            #expect(wrong.output.contains("password authentication failed for user \"bridge\""), "\(wrong.output)")
            #expect(setup.bridge.isRunning)
            #expect(!setup.bridge.stderr.contains(Self.password))
        }
    }
}
