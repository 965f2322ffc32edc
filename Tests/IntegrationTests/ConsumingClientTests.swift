import AMQPClient
import BridgeCore
import Foundation
import KafkaClient
import RedisClient
import Testing

/// The clients' consuming side, against the real servers: what the message sources will read
/// with. Nothing is lost: what is not acknowledged is delivered again.
@Suite("Redis consumer groups on RedisClient", .enabled(if: TestEnvironment.redisURL != nil))
struct RedisConsumerGroupTests {
    let url = TestEnvironment.redisURL ?? ""

    func client() throws -> RedisClient {
        guard
            let config = try SinkFixture.parse("kind: redis, url: \"\(url)\"", retries: 0).settings as? RedisSinkConfig
        else {
            throw TestFailure("expected a redis sink")
        }
        return try RedisClient(config: config)
    }

    /// New entries go to one consumer each; what it does not acknowledge stays pending (and is
    /// read again as its own pending entries); a crashed consumer's entries are claimed by
    /// another after the idle time; XACK empties the pending list.
    @Test func entriesArePendingUntilAcknowledgedAndClaimable() async throws {
        let stream = "consume:\(UUID().uuidString.prefix(8))"
        let client = try client()
        try await client.open()
        defer { _ = try? RedisCLI.run(url, ["DEL", stream]) }
        let created = try await client.run { connection, _ in
            try connection.createGroup(stream: stream, group: "g", start: "0")
        }
        #expect(created)
        #expect(
            try await client.run { connection, _ in try connection.createGroup(stream: stream, group: "g") } == false)
        for index in 1...5 { _ = try RedisCLI.run(url, ["XADD", stream, "*", "n", "\(index)"]) }

        let first = try await client.run { connection, _ in
            try connection.readGroup(streams: [stream], group: "g", consumer: "a", count: 3)
        }
        #expect(first.map(\.stream) == [stream])
        #expect(
            first.first?.entries.compactMap { $0.value("n") }.map { String(decoding: $0, as: UTF8.self) } == [
                "1", "2", "3",
            ])
        let second = try await client.run { connection, _ in
            try connection.readGroup(streams: [stream], group: "g", consumer: "b", count: 10, block: .milliseconds(50))
        }
        #expect(second.first?.entries.count == 2, "the rest goes to the other consumer")
        let nothing = try await client.run { connection, _ in
            try connection.readGroup(streams: [stream], group: "g", consumer: "b", count: 10, block: .milliseconds(50))
        }
        #expect(nothing.isEmpty, "BLOCK timed out: nothing new")
        #expect(try await client.run { connection, _ in try connection.pendingCount(stream: stream, group: "g") } == 5)

        // Consumer a reads its own pending entries again (after a restart, say).
        let pendingOfA = try await client.run { connection, _ in
            try connection.readGroup(streams: [stream], group: "g", consumer: "a", count: 10, pending: true)
        }
        let idsOfA = pendingOfA.first?.entries.map(\.id) ?? []
        #expect(idsOfA == first.first?.entries.map(\.id))

        // a crashed: c claims what a left pending.
        let claimed = try await client.run { connection, _ in
            try connection.autoClaim(stream: stream, group: "g", consumer: "c", minIdle: .zero)
        }
        #expect(Set(claimed.entries.map(\.id)).isSuperset(of: idsOfA))
        let all = (first.first?.entries ?? []) + (second.first?.entries ?? [])
        let acknowledged = try await client.run { connection, _ in
            try connection.acknowledge(stream: stream, group: "g", ids: all.map(\.id))
        }
        #expect(acknowledged == 5)
        #expect(try await client.run { connection, _ in try connection.pendingCount(stream: stream, group: "g") } == 0)
        await client.close()
    }

    /// Reading with a group that does not exist says how to fix it.
    @Test func aMissingGroupIsNamedWithTheFix() async throws {
        let client = try client()
        try await client.open()
        let stream = "consume:\(UUID().uuidString.prefix(8))"
        _ = try RedisCLI.run(url, ["XADD", stream, "*", "n", "1"])
        defer { _ = try? RedisCLI.run(url, ["DEL", stream]) }
        do {
            _ = try await client.run { connection, _ in
                try connection.readGroup(streams: [stream], group: "nobody", consumer: "a", count: 1)
            }
            Issue.record("read with a missing group")
        } catch {
            #expect("\(error)".contains("XREADGROUP on \(stream) failed: NOGROUP"), "\(error)")
            #expect("\(error)".contains("create the group first"), "\(error)")
        }
        await client.close()
    }
}

@Suite("RabbitMQ consumer with manual acknowledgements", .enabled(if: TestEnvironment.rabbitMQURL != nil))
struct AMQPConsumerTests {
    let url = TestEnvironment.rabbitMQURL ?? ""

    func config() throws -> RabbitMQSinkConfig {
        guard
            let config = try SinkFixture.parse("kind: rabbitmq, url: \"\(url)\"", retries: 0).settings
                as? RabbitMQSinkConfig
        else { throw TestFailure("expected a rabbitmq sink") }
        return config
    }

    /// Publishes `count` messages ("1" … "count") to a new durable queue; returns its name.
    func queueWithMessages(_ count: Int) async throws -> String {
        let queue = "consume.\(UUID().uuidString.prefix(8).lowercased())"
        let publisher = try RabbitMQClient(config: try config())
        try await publisher.open()
        try await publisher.run { connection in
            try connection.declare(queue: queue, exchange: "", bindingKey: "")
            for index in 1...count {
                try connection.publishConfirmed(
                    exchange: "", routingKey: queue, body: Array("\(index)".utf8), headers: [("n", "\(index)")],
                    timeout: .seconds(10))
            }
        }
        await publisher.close()
        return queue
    }

    func text(_ consumed: ConsumedMessage?) -> String? {
        consumed.map { String(decoding: $0.message.body, as: UTF8.self) }
    }

    /// At most `prefetch` unacknowledged deliveries; an acknowledgement lets the next ones come;
    /// a rejected message with requeue comes back marked redelivered.
    @Test func prefetchAcknowledgementsAndRequeue() async throws {
        let queue = try await queueWithMessages(4)
        let consumer = try AMQPConsumer(config: try config(), queue: queue, prefetch: 2)
        try await consumer.start()
        let one = try await consumer.next(timeout: .seconds(5))
        let two = try await consumer.next(timeout: .seconds(5))
        #expect([text(one), text(two)] == ["1", "2"])
        #expect(one?.message.headers.contains { $0.0 == "n" && $0.1 == "1" } == true, "\(one?.message.headers ?? [])")
        #expect(try await consumer.next(timeout: .milliseconds(300)) == nil, "prefetch 2: nothing more until an ack")
        try await consumer.acknowledge(try #require(two?.deliveryTag), multiple: true)
        let three = try await consumer.next(timeout: .seconds(5))
        #expect(text(three) == "3")
        try await consumer.reject(try #require(three?.deliveryTag), requeue: true)
        var seen: [(String?, Bool)] = []
        while let message = try await consumer.next(timeout: .seconds(2)) {
            seen.append((text(message), message.message.redelivered))
            try await consumer.acknowledge(message.deliveryTag)
        }
        #expect(seen.contains { $0.0 == "3" && $0.1 }, "the rejected message came back redelivered: \(seen)")
        #expect(Set(seen.compactMap(\.0)) == ["3", "4"])
        await consumer.close()
    }

    /// What a consumer did not acknowledge before its connection ended is delivered again to
    /// the next one, marked redelivered.
    @Test func unacknowledgedMessagesComeBackAfterTheConnectionEnds() async throws {
        let queue = try await queueWithMessages(2)
        let first = try AMQPConsumer(config: try config(), queue: queue, prefetch: 10)
        try await first.start()
        #expect(text(try await first.next(timeout: .seconds(5))) == "1")
        await first.close()
        let second = try AMQPConsumer(config: try config(), queue: queue, prefetch: 10)
        try await second.start()
        let again = try await second.next(timeout: .seconds(5))
        #expect(text(again) == "1")
        #expect(again?.message.redelivered == true)
        #expect(text(try await second.next(timeout: .seconds(5))) == "2")
        await second.close()
    }

    /// Consuming a queue that does not exist is an error that says so.
    @Test func aMissingQueueIsNamed() async throws {
        let consumer = try AMQPConsumer(config: try config(), queue: "consume.missing.\(UUID().uuidString.prefix(6))")
        do {
            try await consumer.start()
            Issue.record("consumed a missing queue")
        } catch {
            #expect("\(error)".contains("404") && "\(error)".contains("the queue does not exist"), "\(error)")
        }
        await consumer.close()
    }
}

extension KafkaClusterSuites {
    /// A consumer group on the mock cluster: what one member committed is where the next one
    /// starts; nothing after the committed position is skipped.
    @Suite("Kafka consumer groups on KafkaConsumer")
    struct KafkaConsumerGroupTests {
        static func connection(brokers: String? = KafkaCLI.brokers) throws -> KafkaSinkConfig {
            guard
                let config = try SinkFixture.parse(
                    "kind: kafka, brokers: \"\(brokers ?? "")\"", retries: 0
                ).settings as? KafkaSinkConfig
            else { throw TestFailure("expected a kafka sink") }
            return config
        }

        static func member(group: String) throws -> KafkaConsumer {
            try KafkaConsumer(
                config: try connection(),
                properties: [
                    ("group.id", group), ("enable.auto.commit", "false"), ("auto.offset.reset", "earliest"),
                    ("session.timeout.ms", "6000"), ("log.queue", "true"),
                ], description: "test consumer")
        }

        /// Polls until `count` messages came (or 30 s passed): (partition, offset, value).
        static func read(_ consumer: KafkaConsumer, count: Int) throws -> [(Int32, Int64, String)] {
            var messages: [(Int32, Int64, String)] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while messages.count < count, ContinuousClock.now < deadline {
                try consumer.poll(timeoutMilliseconds: 200) { polled in
                    if case .message(let message) = polled {
                        messages.append(
                            (
                                message.partition, message.offset,
                                message.payload.map { String(decoding: $0, as: UTF8.self) } ?? ""
                            ))
                    }
                }
            }
            return messages
        }

        @Test func theNextMemberStartsAfterWhatWasCommitted() async throws {
            let topic = "group_\(UUID().uuidString.prefix(8).lowercased())"
            let group = "g_\(topic)"
            try KafkaCLI.control("topic \(topic) 2")
            let producer = KafkaProducer(config: try Self.connection(), logger: InProcessPipe.testLogger)
            try await producer.open()
            _ = try await producer.produce(
                (0..<10).map { KafkaRecord(topic: topic, partition: Int32($0 % 2), value: Array("m\($0)".utf8)) })
            await producer.close()

            let firstRead = try await TestEnvironment.offPool {
                let first = try Self.member(group: group)
                try first.subscribe([topic])
                let messages = try Self.read(first, count: 10)
                // Commit the first three messages of each partition only.
                let positions = [Int32(0), 1].map { partition in
                    (topic: topic, partition: partition, next: Int64(3))
                }
                try first.commit(positions)
                let committed = try first.committed(topic, partitions: [0, 1])
                first.leaveGroup()
                return (messages.map(\.2), committed)
            }
            #expect(Set(firstRead.0) == Set((0..<10).map { "m\($0)" }))
            #expect(firstRead.1 == [0: 3, 1: 3])

            let secondRead = try await TestEnvironment.offPool {
                let second = try Self.member(group: group)
                try second.subscribe(["^group_\(topic.dropFirst("group_".count))"])
                let messages = try Self.read(second, count: 4)
                second.leaveGroup()
                return messages
            }
            // Partition 0 holds m0 m2 m4 m6 m8, partition 1 m1 m3 …: offsets 3 and 4 of each.
            #expect(Set(secondRead.map(\.2)) == ["m6", "m8", "m7", "m9"], "\(secondRead)")
            #expect(secondRead.allSatisfy { $0.1 >= 3 })
        }
    }
}
