import AMQPClient
import BridgeCore
import ForeignTables
import Foundation
import Pipeline
import RabbitMQSink
import Testing
import WireProtocol

@Suite(
    "RabbitMQ sink against a real rabbitmq-server",
    .enabled(if: TestEnvironment.hasPostgres && TestEnvironment.rabbitMQURL != nil))
struct RabbitMQSinkTests {
    func rabbitSink(_ yaml: String, url: String? = nil, retries: Int = 1) throws -> PipeSink {
        let sink = try SinkFixture.parse(
            "kind: rabbitmq, url: \"\(url ?? TestEnvironment.rabbitMQURL ?? "")\", \(yaml)", retries: retries)
        guard let rabbit = sink.settings as? RabbitMQSinkConfig else { throw TestFailure("expected a rabbitmq sink") }
        return PipeSink(
            name: "rabbitmq",
            sink: RabbitMQSink(
                config: rabbit, client: try RabbitMQClient(config: rabbit), maxInFlight: 500,
                logger: InProcessPipe.testLogger),
            delivery: sink.delivery)
    }

    /// A wrong password is named as such, with the fix.
    @Test func aWrongPasswordIsALoginFailure() async throws {
        let url = try #require(TestEnvironment.rabbitMQURL)
        var components = try #require(URLComponents(string: url))
        components.password = "not-the-password"
        let config = try SinkFixture.parse("kind: rabbitmq, url: \"\(components.string!)\", queue: q", retries: 0)
        guard let rabbit = config.settings as? RabbitMQSinkConfig else { throw TestFailure("expected a rabbitmq sink") }
        do {
            try await RabbitMQClient(config: rabbit).open()
            Issue.record("logged in with a wrong password")
        } catch {
            #expect("\(error)".contains("login failed: "), "\(error)")
            #expect("\(error)".contains("check the user, password and vhost in the URL"), "\(error)")
            #expect(!"\(error)".contains("not-the-password"), "the password stays out of the message")
        }
    }

    /// An INSERT the broker refuses (a full queue that rejects publishes) is an error naming the
    /// refusal, not a silent loss.
    @Test(.enabled(if: AMQPCLI.url2 != nil && AMQPCLI.control2 != nil))
    func aRefusedPublishIsAnError() async throws {
        let url = try #require(AMQPCLI.url2)
        try await OutageLock.holding([.rabbitMQ2]) {
            let queue = "pgbridge-full.\(UUID().uuidString.prefix(8))"
            let declared = try await TestEnvironment.shellAsync("amqp-declare-queue --url='\(url)' -q '\(queue)'")
            #expect(declared.status == 0, "\(declared.output)")
            try await AMQPCLI.control(
                "policy pgbridge-full '^pgbridge-full\\.' '{\"max-length\": 0, \"overflow\": \"reject-publish\"}'")
            let config = try SinkFixture.parse("kind: rabbitmq, url: \"\(url)\", queue: q", retries: 0)
            guard let rabbit = config.settings as? RabbitMQSinkConfig else {
                throw TestFailure("expected a rabbitmq sink")
            }
            let table = RabbitMQQueueTable(
                queue: queue, exchange: "", client: try RabbitMQClient(config: rabbit), maxScanRows: 3)
            var refusal = ""
            // The policy reaches the queue within moments.
            try await waitFor("the broker to refuse a publish", timeout: .seconds(30)) {
                do {
                    _ = try await table.insert([["body": .text("x")]])
                    return false
                } catch {
                    refusal = "\(error)"
                    return true
                }
            }
            #expect(refusal.contains("RabbitMQ refused the message (nack)"), "\(refusal)")

            // A pipe's sink gets the same refusal: retried, then dead-lettered with the reason, and
            // the pipe goes on.
            let db = try TestDatabase(prefix: "amqp_nack")
            defer { db.drop() }
            try db.sql("CREATE TABLE orders (id int PRIMARY KEY)")
            let pipe = try InProcessPipe(
                database: db, name: "amqp_nack", tables: ["public.orders"],
                sinks: [try rabbitSink("routing_key: \"\(queue)\"", url: url, retries: 1)])
            try await pipe.startStreaming(db)
            try db.sql("INSERT INTO orders VALUES (1)")
            let letters = try await EventFile.waitFor(pipe.deadLetterPath) { !$0.isEmpty }
            try await pipe.stop()
            #expect(
                (letters.first?["reason"] as? String)?.contains("RabbitMQ did not accept the message (basic.nack)")
                    == true, "\(letters)")
        }
    }

    /// A peek takes messages off the queue until it ends: with a LIMIT it takes no more than
    /// that (max_scan_rows 3 and 10 messages: LIMIT 2 works, an unlimited peek is refused).
    @Test func peeksTakeNoMoreThanTheQueryUses() async throws {
        let url = try #require(TestEnvironment.rabbitMQURL)
        let queue = "peek.\(UUID().uuidString.prefix(8))"
        _ = try TestEnvironment.shell("amqp-declare-queue --url=\(url) -q \(queue) -d")
        for index in 1...10 {
            _ = try TestEnvironment.shell("amqp-publish --url=\(url) -r \(queue) -b 'm\(index)'")
        }
        let config = try SinkFixture.parse("kind: rabbitmq, url: \"\(url)\", queue: \(queue)", retries: 1)
        guard let rabbit = config.settings as? RabbitMQSinkConfig else { throw TestFailure("expected a rabbitmq sink") }
        let table = RabbitMQQueueTable(
            queue: queue, exchange: "", client: try RabbitMQClient(config: rabbit), maxScanRows: 3)
        let limited = try await table.scan(ScanRequest(rowLimit: 2))
        let rows = try await limited.next() ?? []
        await limited.close()
        #expect(rows.count == 2 && rows.first?[4] == .text("m1"), "\(rows)")
        await #expect(throws: WireError.self) { _ = try await table.scan(ScanRequest()) }
        // Nothing was consumed: the ten messages are all still there.
        let left = try TestEnvironment.shell(
            "amqp-get --url=\(url) -q \(queue) >/dev/null && echo got")
        #expect(left.output.contains("got"))
    }

    @Test func publishesConfirmedPersistentMessagesToABoundQueue() async throws {
        let url = try #require(TestEnvironment.rabbitMQURL)
        let db = try TestDatabase(prefix: "amqp_basic")
        defer { db.drop() }
        try db.sql("CREATE TABLE orders (id int PRIMARY KEY, total numeric, note text)")
        let queue = "test.\(db.name)"
        let pipe = try InProcessPipe(
            database: db, name: "amqp_basic", tables: ["public.orders"],
            sinks: [
                try rabbitSink(
                    "exchange: amq.topic, routing_key: \"\(db.name).{table}.{op}\", queue: \(queue), binding_key: \"\(db.name).#\""
                )
            ])
        try await pipe.startStreaming(db)
        try db.sql(
            """
            INSERT INTO orders SELECT g, g * 1.5, 'n' || g FROM generate_series(1, 1200) g;
            UPDATE orders SET note = 'changed' WHERE id = 7;
            DELETE FROM orders WHERE id = 8;
            """)
        _ = try await pipe.waitForEvents(count: 1202)
        let messages = try await AMQPCLI.consume(url, queue: queue, count: 1202, timeout: .seconds(30))
        try await pipe.stop()
        #expect(messages.count == 1202)
        #expect(messages.prefix(1200).compactMap { $0.after?["id"] as? Int } == Array(1...1200))
        #expect(messages[1200].op == "update" && messages[1201].op == "delete")
        #expect(pipe.deadLetters().isEmpty)
    }

    @Test func unroutableMessagesAreRejectedAndDeadLettered() async throws {
        let url = try #require(TestEnvironment.rabbitMQURL)
        let db = try TestDatabase(prefix: "amqp_unroutable")
        defer { db.drop() }
        try db.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
        let queue = "test.\(db.name)"
        // Only inserts are bound: the update has no route and comes back (mandatory).
        let pipe = try InProcessPipe(
            database: db, name: "amqp_unroutable", tables: ["public.items"],
            sinks: [
                try rabbitSink(
                    "exchange: amq.topic, routing_key: \"\(db.name).{table}.{op}\", queue: \(queue), binding_key: \"\(db.name).*.insert\""
                )
            ])
        try await pipe.startStreaming(db)
        try db.sql(
            "INSERT INTO items VALUES (1, 'a'); UPDATE items SET name = 'b' WHERE id = 1; INSERT INTO items VALUES (2, 'c')"
        )
        let letters = try await EventFile.waitFor(pipe.deadLetterPath) { !$0.isEmpty }
        let messages = try await AMQPCLI.consume(url, queue: queue, count: 2, timeout: .seconds(20))
        try await pipe.stop()
        #expect(messages.compactMap { $0.after?["id"] as? Int } == [1, 2])
        #expect(letters.count == 1)
        #expect((letters.first?["reason"] as? String)?.contains("NO_ROUTE") == true, "\(letters)")
        #expect(letters.first?["attempts"] as? Int == 2)  // retries: 1
        #expect((letters.first?["event"] as? [String: Any])?.op == "update")
    }

    @Test(.enabled(if: AMQPCLI.control2 != nil && AMQPCLI.url2 != nil))
    func brokerStoppedForTwentySecondsLosesNothing() async throws {
        try await OutageLock.holding([.rabbitMQ2]) {
            let url = try #require(AMQPCLI.url2)
            let db = try TestDatabase(prefix: "amqp_outage")
            defer { db.drop() }
            try db.sql("CREATE TABLE ticks (id int PRIMARY KEY, v int)")
            let queue = "test.\(db.name)"
            let pipe = try InProcessPipe(
                database: db, name: "amqp_outage", tables: ["public.ticks"],
                sinks: [try rabbitSink("queue: \(queue)", url: url)])
            try await pipe.startStreaming(db)
            let inserter = Inserter(url: db.url)
            inserter.start(transactions: 200, rowsPerTransaction: 10, pause: .milliseconds(20), table: "ticks") {
                _, first in
                "INSERT INTO ticks SELECT g, g FROM generate_series(\(first), \(first + 9)) g"
            }
            try await Task.sleep(for: .seconds(1))
            try await AMQPCLI.control("stop")
            try await Task.sleep(for: .seconds(15))
            // The sink is down, but the slot's walsender still gets status updates (no timeout, no
            // reconnect) while the pipe waits.
            let replyAge = try db.value(
                """
                SELECT extract(epoch FROM now() - r.reply_time) FROM pg_stat_replication r
                JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = 'pgbridge_\(db.name)'
                """)
            #expect(
                replyAge.flatMap(Double.init).map { $0 < 5 } == true, "last status update \(replyAge ?? "never") s ago")
            try await Task.sleep(for: .seconds(5))
            try await AMQPCLI.control("start")
            try await inserter.waitUntilDone()
            let messages = try await waitForQueue(url, queue: queue, distinct: 2000)
            try await pipe.stop()
            let ids = Set(messages.compactMap { $0.after?["id"] as? Int })
            #expect(ids == Set(1...2000), "missing \(Set(1...2000).subtracting(ids).count) rows")
            #expect(pipe.deadLetters().isEmpty)
        }
    }

    /// Consumes until `distinct` different events arrived (redeliveries after the outage may
    /// add duplicates: at-least-once).
    func waitForQueue(_ url: String, queue: String, distinct: Int) async throws -> [[String: Any]] {
        var messages: [[String: Any]] = []
        var ids: Set<String> = []
        let deadline = ContinuousClock.now + .seconds(90)
        while ids.count < distinct, ContinuousClock.now < deadline {
            let batch = try await AMQPCLI.consume(url, queue: queue, count: 1000, timeout: .seconds(5))
            messages += batch
            for message in batch { if let id = message.eventID { ids.insert(id) } }
        }
        return messages
    }
}
