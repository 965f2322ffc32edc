import AMQPClient
import BridgeCore
import Foundation
import KafkaClient
import KafkaSink
import RabbitMQSink
import RedisClient
import RedisSink
import TestSupport
import Testing

/// The sink adapters straight on their clients: `deliver` gets hand-made batches (no
/// PostgreSQL, no pipe) and what reaches the real server is read back with its own tools. Each
/// test also shows which event of which batch a refusal names, and that a client shared by two
/// sinks stays open until the last one closes.
enum SinkAdapterFixture {
    /// Native events of table `public.readings`: insert, update, delete of the same key.
    static func events(key: Int, table: String = "readings") -> [String] {
        let source = "\"source\":{\"db\":\"app\",\"schema\":\"public\",\"table\":\"\(table)\"}"
        return [
            "{\"id\":\"0/A:\(key)\",\"op\":\"insert\",\(source),\"key\":{\"id\":\(key)},\"before\":null,\"after\":{\"id\":\(key),\"temp\":20.5,\"note\":\"first\"}}",
            "{\"id\":\"0/B:\(key)\",\"op\":\"update\",\(source),\"key\":{\"id\":\(key)},\"before\":null,\"after\":{\"id\":\(key),\"temp\":21.5,\"note\":null}}",
            "{\"id\":\"0/C:\(key)\",\"op\":\"delete\",\(source),\"key\":{\"id\":\(key)},\"before\":{\"id\":\(key)},\"after\":null}",
        ]
    }

    static func batch(_ events: [String], sequence: UInt64 = 1) -> EventBatch { .fixture(events, sequence: sequence) }

    static func sinkConfig(_ fields: String) throws -> SinkConfig {
        try SinkFixture.parse(fields, retries: 0)
    }
}

@Suite("Redis sink adapter on RedisClient", .enabled(if: TestEnvironment.redisURL != nil))
struct RedisSinkAdapterTests {
    let url = TestEnvironment.redisURL ?? ""

    func redis(_ fields: String) throws -> RedisSinkConfig {
        guard
            let config = try SinkAdapterFixture.sinkConfig("kind: redis, url: \"\(url)\", \(fields)").settings
                as? RedisSinkConfig
        else { throw TestFailure("expected a redis sink") }
        return config
    }

    /// Stream mode: one XADD per event, in batch order across batches, with id, op and the event.
    @Test func streamEntriesFollowTheBatches() async throws {
        let key = "adapter:\(UUID().uuidString.prefix(8))"
        let config = try redis("key: \"\(key)\"")
        let sink = RedisSink(config: config, client: try RedisClient(config: config), logger: InProcessPipe.testLogger)
        try await sink.open()
        let first = SinkAdapterFixture.events(key: 1)
        let second = SinkAdapterFixture.events(key: 2)
        let result = try await sink.deliver([
            SinkAdapterFixture.batch(first), SinkAdapterFixture.batch(second, sequence: 2),
        ])
        await sink.close()
        #expect(result.rejected.isEmpty)
        let entries = try RedisCLI.stream(url, key)
        #expect(
            entries.map { $0["id"] } == (first + second).map { event in event.split(separator: "\"")[3].description })
        #expect(entries.map { $0["op"] } == ["insert", "update", "delete", "insert", "update", "delete"])
        #expect(entries.map { $0["event"] } == first + second)
        _ = try RedisCLI.run(url, ["DEL", key])
    }

    /// Hash mode mirrors rows: the update removes the column that became null, the delete removes
    /// the hash; the other key's row stays.
    @Test func hashModeMirrorsTheRows() async throws {
        let prefix = "adapter:\(UUID().uuidString.prefix(8))"
        let config = try redis("mode: hash, key: \"\(prefix):{key}\"")
        let sink = RedisSink(config: config, client: try RedisClient(config: config), logger: InProcessPipe.testLogger)
        try await sink.open()
        let kept = Array(SinkAdapterFixture.events(key: 2).prefix(2))
        _ = try await sink.deliver([SinkAdapterFixture.batch(Array(SinkAdapterFixture.events(key: 1).prefix(2)) + kept)]
        )
        #expect(try RedisCLI.hash(url, "\(prefix):1") == ["id": "1", "temp": "21.5"], "note became null: HDEL")
        _ = try await sink.deliver([SinkAdapterFixture.batch([SinkAdapterFixture.events(key: 1)[2]])])
        await sink.close()
        #expect(try RedisCLI.hash(url, "\(prefix):1").isEmpty, "deleted")
        #expect(try RedisCLI.hash(url, "\(prefix):2") == ["id": "2", "temp": "21.5"])
        _ = try RedisCLI.run(url, ["DEL", "\(prefix):2"])
    }

    /// A key holding another type refuses its commands: exactly that event (batch 1, event 1) is
    /// rejected with Redis's reason, and the events around it are written.
    @Test func aRefusedCommandNamesItsEvent() async throws {
        let prefix = "adapter:\(UUID().uuidString.prefix(8))"
        _ = try RedisCLI.run(url, ["SET", "\(prefix):readings", "a string"])
        let config = try redis("key: \"\(prefix):{table}\"")
        let sink = RedisSink(config: config, client: try RedisClient(config: config), logger: InProcessPipe.testLogger)
        try await sink.open()
        let good = SinkAdapterFixture.events(key: 1, table: "other")
        let bad = [SinkAdapterFixture.events(key: 2)[0]]
        let result = try await sink.deliver([
            SinkAdapterFixture.batch([good[0]]), SinkAdapterFixture.batch(bad + [good[1]], sequence: 2),
        ])
        await sink.close()
        #expect(result.rejected.map { [$0.batch, $0.event] } == [[1, 0]])
        #expect(result.rejected.first?.reason.contains("WRONGTYPE") == true, "\(result.rejected)")
        #expect(try RedisCLI.stream(url, "\(prefix):other").map { $0["op"] } == ["insert", "update"])
        _ = try RedisCLI.run(url, ["DEL", "\(prefix):readings", "\(prefix):other"])
    }

    /// Two sinks on one client: closing the first leaves the connection to the second.
    @Test func aSharedClientStaysOpenUntilTheLastSinkCloses() async throws {
        let key = "adapter:\(UUID().uuidString.prefix(8))"
        let config = try redis("key: \"\(key)\"")
        let client = try RedisClient(config: config)
        let first = RedisSink(config: config, client: client, logger: InProcessPipe.testLogger)
        let second = RedisSink(config: config, client: client, logger: InProcessPipe.testLogger)
        try await first.open()
        try await second.open()
        await first.close()
        let result = try await second.deliver([SinkAdapterFixture.batch(SinkAdapterFixture.events(key: 3))])
        await second.close()
        #expect(result.rejected.isEmpty)
        #expect(try RedisCLI.stream(url, key).count == 3)
        _ = try RedisCLI.run(url, ["DEL", key])
    }
}

@Suite("RabbitMQ sink adapter on RabbitMQClient", .enabled(if: TestEnvironment.rabbitMQURL != nil))
struct RabbitMQSinkAdapterTests {
    let url = TestEnvironment.rabbitMQURL ?? ""

    func sink(_ fields: String) throws -> RabbitMQSink {
        let parsed = try SinkAdapterFixture.sinkConfig("kind: rabbitmq, url: \"\(url)\", \(fields)")
        guard let config = parsed.settings as? RabbitMQSinkConfig else { throw TestFailure("expected a rabbitmq sink") }
        return RabbitMQSink(
            config: config, client: try RabbitMQClient(config: config), logger: InProcessPipe.testLogger)
    }

    /// Every event is published to the declared queue, confirmed, in order.
    @Test func eventsReachTheQueueInOrder() async throws {
        let queue = "adapter.\(UUID().uuidString.prefix(8).lowercased())"
        let sink = try sink("queue: \(queue)")
        try await sink.open()
        let events = SinkAdapterFixture.events(key: 1) + SinkAdapterFixture.events(key: 2)
        let result = try await sink.deliver([
            SinkAdapterFixture.batch(Array(events.prefix(4))), SinkAdapterFixture.batch(Array(events.dropFirst(4))),
        ])
        await sink.close()
        #expect(result.rejected.isEmpty)
        let consumed = try await AMQPCLI.consume(url, queue: queue, count: events.count, timeout: .seconds(20))
        #expect(consumed.compactMap { $0["id"] as? String } == events.map { $0.split(separator: "\"")[3].description })
    }

    /// An unroutable message (an exchange without a binding for its key, `mandatory`) is
    /// returned by the broker: exactly its event is rejected, the others are confirmed.
    @Test func anUnroutableEventIsRejectedAlone() async throws {
        let queue = "adapter.\(UUID().uuidString.prefix(8).lowercased())"
        let sink = try sink("exchange: amq.direct, queue: \(queue), binding_key: bound, routing_key: \"{table}\"")
        try await sink.open()
        let routed = SinkAdapterFixture.events(key: 1, table: "bound")
        let unroutable = SinkAdapterFixture.events(key: 2, table: "nowhere")[0]
        let result = try await sink.deliver([SinkAdapterFixture.batch([routed[0], unroutable, routed[1]])])
        await sink.close()
        #expect(result.rejected.map { [$0.batch, $0.event] } == [[0, 1]], "\(result.rejected)")
        #expect(result.rejected.first?.reason.contains("NO_ROUTE") == true, "\(result.rejected)")
        let consumed = try await AMQPCLI.consume(url, queue: queue, count: 2, timeout: .seconds(20))
        #expect(consumed.compactMap { $0["op"] as? String } == ["insert", "update"])
    }
}

extension KafkaClusterSuites {
    @Suite("Kafka sink adapter on KafkaProducer")
    struct KafkaSinkAdapterTests {
        func sink(_ fields: String, producer: KafkaProducer? = nil) throws -> (KafkaSink, KafkaProducer) {
            let parsed = try SinkAdapterFixture.sinkConfig(
                "kind: kafka, brokers: \"\(KafkaCLI.brokers ?? "")\", \(fields)")
            guard let config = parsed.settings as? KafkaSinkConfig else { throw TestFailure("expected a kafka sink") }
            let producer = producer ?? KafkaProducer(config: config, logger: InProcessPipe.testLogger)
            return (KafkaSink(config: config, producer: producer, logger: InProcessPipe.testLogger), producer)
        }

        /// Each event becomes one message on the topic its template names, keyed by the row's key
        /// (so one partition keeps a key's order), with the id and op headers.
        @Test func eventsBecomeKeyedMessagesWithHeaders() async throws {
            let topic = "adapter_\(UUID().uuidString.prefix(8).lowercased())"
            try KafkaCLI.control("topic \(topic) 3")
            let (sink, _) = try sink("topic: \"\(topic)\"")
            try await sink.open()
            let events = SinkAdapterFixture.events(key: 7)
            let result = try await sink.deliver([SinkAdapterFixture.batch(events)])
            await sink.close()
            #expect(result.rejected.isEmpty)
            let messages = try await KafkaCLI.waitForMessages(topic, count: 3)
            #expect(Set(messages.map(\.partition)).count == 1, "one key, one partition")
            #expect(messages.sorted { $0.offset < $1.offset }.map(\.value) == events)
            #expect(messages.allSatisfy { $0.key == "{\"id\":7}" }, "\(messages.map(\.key))")
            #expect(
                messages.allSatisfy {
                    $0.headers.contains("pgbridge-id=0/") && $0.headers.contains("pgbridge-table=public.readings")
                }, "\(messages.map(\.headers))")
        }

        /// Two sinks on one producer (two topics): the first to close leaves the handle open.
        @Test func aSharedProducerStaysOpenUntilTheLastSinkCloses() async throws {
            let topics = (0..<2).map { "adapter_\($0)_\(UUID().uuidString.prefix(8).lowercased())" }
            for topic in topics { try KafkaCLI.control("topic \(topic) 1") }
            let (first, producer) = try sink("topic: \"\(topics[0])\"")
            let (second, _) = try sink("topic: \"\(topics[1])\"", producer: producer)
            try await first.open()
            try await second.open()
            await first.close()
            let result = try await second.deliver([SinkAdapterFixture.batch(SinkAdapterFixture.events(key: 1))])
            await second.close()
            #expect(result.rejected.isEmpty)
            #expect(try await KafkaCLI.waitForMessages(topics[1], count: 3).count == 3)
        }
    }
}
