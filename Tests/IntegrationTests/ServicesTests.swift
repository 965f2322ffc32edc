import Foundation
import Testing

/// The sink systems `scripts/test` starts (real Redis and RabbitMQ, librdkafka's Kafka mock
/// cluster) accept and return messages through their own standard clients.
@Suite("Test services: Redis, RabbitMQ")
struct ServicesTests {
    @Test(.enabled(if: TestEnvironment.rabbitMQURL != nil))
    func rabbitMQPublishesAndGets() throws {
        let url = try #require(TestEnvironment.rabbitMQURL)
        let queue = "services-\(UUID().uuidString.prefix(8))"
        let declare = try TestEnvironment.shell("amqp-declare-queue --url=\(url) -q \(queue)")
        #expect(declare.status == 0, "\(declare.output)")
        let publish = try TestEnvironment.shell("amqp-publish --url=\(url) -r \(queue) -b 'hello rabbit'")
        #expect(publish.status == 0, "\(publish.output)")
        let get = try TestEnvironment.shell("amqp-get --url=\(url) -q \(queue)")
        #expect(get.status == 0 && get.output.contains("hello rabbit"), "\(get.output)")
    }

    @Test(.enabled(if: TestEnvironment.redisURL != nil))
    func redisStreamsWork() throws {
        let url = try #require(TestEnvironment.redisURL)
        let port = try #require(URL(string: url)?.port)
        let key = "services-\(UUID().uuidString.prefix(8))"
        let add = try TestEnvironment.shell("redis-cli -p \(port) XADD \(key) '*' event hello")
        #expect(add.status == 0, "\(add.output)")
        let range = try TestEnvironment.shell("redis-cli -p \(port) XRANGE \(key) - +")
        #expect(range.output.contains("hello"), "\(range.output)")
    }
}

extension KafkaClusterSuites {
    /// The Kafka mock cluster through kcat.
    @Suite("Test services: Kafka mock")
    struct KafkaServiceTests {
        @Test(.enabled(if: TestEnvironment.kafkaBrokers != nil))
        func kafkaMockClusterProducesAndConsumes() throws {
            let brokers = try #require(TestEnvironment.kafkaBrokers)
            let topic = "services-\(UUID().uuidString.prefix(8))"
            let produce = try TestEnvironment.shell(
                "printf 'k1:hello\\nk2:world\\n' | kcat -b \(brokers) -t \(topic) -P -K: -X topic.metadata.refresh.interval.ms=100"
            )
            #expect(produce.status == 0, "\(produce.output)")
            let consume = try TestEnvironment.shell(
                "kcat -b \(brokers) -t \(topic) -C -o beginning -e -q -f '%k=%s\\n' -m 20")
            #expect(consume.status == 0, "\(consume.output)")
            #expect(Set(consume.output.split(separator: "\n").map(String.init)) == ["k1=hello", "k2=world"])
            let metadata = try TestEnvironment.shell("kcat -b \(brokers) -L -m 10")
            #expect(metadata.output.contains("3 brokers"), "\(metadata.output)")
        }
    }
}
