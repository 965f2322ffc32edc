import BridgeCore
import BridgeRuntime
import KafkaSource
import RabbitMQSource
import RedisSource
import Testing

@Suite("Message source configuration")
struct MessageSourceConfigTests {
    static let base = "postgres: {url: \"postgresql://u@127.0.0.1/db\"}\n"

    static func source(_ yaml: String) throws -> MessageSourceConfig {
        let config = try BridgeConfig.parse(
            yaml: base + "pipes: [{name: ingest, source: {\(yaml)}, sinks: [{kind: file, path: o}]}]",
            registry: .standard)
        guard case .message(let source) = config.pipes[0].source else {
            Issue.record("not a message source")
            throw ConfigError(path: "", message: "not a message source")
        }
        return source
    }

    @Test func aKafkaSourceWithEveryOption() throws {
        let source = try Self.source(
            """
            kind: kafka, brokers: "k1:9092,k2:9092", topics: [readings, "^sensors\\\\..*"], group: ingest_g,
            start: latest, batch_messages: 500, format: json, table: "raw.{topic}", key: [device, time],
            sasl: plain, username: u, password: p, properties: {fetch.min.bytes: "1"}
            """)
        let settings = try #require(source.settings as? KafkaSourceConfig)
        #expect(source.kind == "kafka" && source.format == .json && source.table == "raw.{topic}")
        #expect(source.key == ["device", "time"])
        #expect(settings.topics == ["readings", "^sensors\\..*"] && settings.group == "ingest_g")
        #expect(settings.start == .latest && settings.batchMessages == 500)
        #expect(settings.connection.brokers == "k1:9092,k2:9092" && settings.connection.username == "u")
        #expect(settings.connection.properties == ["fetch.min.bytes": "1"])
    }

    @Test func defaults() throws {
        let source = try Self.source("kind: kafka, brokers: k:9092, topics: [readings]")
        let settings = try #require(source.settings as? KafkaSourceConfig)
        #expect(source.format == .json && source.table == "{topic}" && source.key == nil)
        #expect(settings.group == "pgbridge-ingest" && settings.start == .earliest && settings.batchMessages == 10_000)
    }

    @Test func mistakesNameTheKeyAndTheFix() {
        let pipe = { (source: String) in
            "pipes: [{name: ingest, source: {\(source)}, sinks: [{kind: file, path: o}]}]"
        }
        expectConfigErrors(
            [
                (pipe("kind: kafka, topics: [t]"), "missing brokers"),
                (pipe("kind: kafka, brokers: k:9092"), "missing topics"),
                (pipe("kind: kafka, brokers: k:9092, topics: []"), "empty: name at least one topic"),
                (pipe("kind: kafka, brokers: k:9092, topics: [\"a b\"]"), "is not a Kafka topic name"),
                (pipe("kind: kafka, brokers: k:9092, topics: [t], format: xml"), "unknown message format 'xml'"),
                (
                    pipe("kind: kafka, brokers: k:9092, topics: [t], table: \"{queue}\""),
                    "'{queue}' is not a placeholder"
                ),
                (pipe("kind: kafka, brokers: k:9092, topics: [t], table: a.b.c"), "is not a table name"),
                (pipe("kind: kafka, brokers: k:9092, topics: [t], key: []"), "empty: name the fields"),
                (pipe("kind: kafka, brokers: k:9092, topics: [t], start: middle"), "unknown value 'middle'"),
                (pipe("kind: kafka, brokers: k:9092, topics: [t], format: native, key: [a]"), "remove table and key"),
                (pipe("kind: kafka, brokers: k:9092, topics: [t], format: debezium, table: x"), "remove table"),
                (
                    pipe("kind: kafka, brokers: k:9092, topics: [t], properties: {group.id: x}"),
                    "group.id is set by pgbridge"
                ),
                (pipe("kind: kafka, brokers: k:9092, topics: [t], queue: q"), "queue"),
                (pipe("kind: rabbit, url: x"), "expected one of: replication, outbox, notify, kafka, rabbitmq, redis"),
                (pipe("kind: rabbitmq, queue: q"), "missing url"),
                (pipe("kind: rabbitmq, url: \"amqp://h/\""), "missing queue"),
                (pipe("kind: rabbitmq, url: \"amqp://h/\", queue: q, prefetch: 0"), "prefetch"),
                (
                    pipe("kind: rabbitmq, url: \"amqp://h/\", queue: q, prefetch: 10, batch_messages: 20"),
                    "is more than prefetch (10)"
                ),
                (
                    pipe("kind: rabbitmq, url: \"amqp://h/\", queue: q, table: \"{topic}\""),
                    "'{topic}' is not a placeholder"
                ),
                (pipe("kind: redis, url: \"redis://h:6379/0\""), "missing streams"),
                (pipe("kind: redis, url: \"redis://h:6379/0\", streams: [a, a]"), "a stream is named twice"),
                (pipe("kind: redis, url: \"redis://h:6379/0\", streams: [a], claim_after: 10ms"), "too short"),
                (pipe("kind: redis, url: \"redis://h:6379/0\", streams: [a], start: now"), "unknown value 'now'"),
                (
                    pipe("kind: redis, url: \"redis://h:6379/0\", streams: [a], field: \"\""),
                    "empty: name the entry field"
                ),
            ], base: Self.base)
    }

    @Test func aRabbitMQSourceWithItsOptions() throws {
        let source = try Self.source(
            "kind: rabbitmq, url: \"amqp://u:p@mq:5672/%2F\", queue: readings, prefetch: 200, heartbeat: 10s, table: \"raw.{queue}\""
        )
        let settings = try #require(source.settings as? RabbitMQSourceConfig)
        #expect(source.kind == "rabbitmq" && source.table == "raw.{queue}")
        #expect(settings.queue == "readings" && settings.prefetch == 200 && settings.batchMessages == 50)
        #expect(settings.connection.url == "amqp://u:p@mq:5672/%2F" && settings.connection.heartbeat == .seconds(10))
        let defaults = try #require(
            try Self.source("kind: rabbitmq, url: \"amqp://mq/\", queue: q").settings as? RabbitMQSourceConfig)
        #expect(defaults.prefetch == 1000 && defaults.batchMessages == 250)
    }

    @Test func aRedisSourceWithItsOptions() throws {
        let source = try Self.source(
            """
            kind: redis, url: "redis://r:6379/2", streams: [readings, alerts], group: g, consumer: c1, start: latest,
            claim_after: 5s, batch_messages: 100, field: body, format: text, table: "raw.{stream}"
            """)
        let settings = try #require(source.settings as? RedisSourceConfig)
        #expect(source.kind == "redis" && source.format == .text && source.table == "raw.{stream}")
        #expect(settings.streams == ["readings", "alerts"] && settings.group == "g" && settings.consumer == "c1")
        #expect(settings.start == .latest && settings.claimAfter == .seconds(5) && settings.batchMessages == 100)
        #expect(settings.field == "body")
        let defaults = try #require(
            try Self.source("kind: redis, url: \"redis://r:6379/0\", streams: s").settings as? RedisSourceConfig)
        #expect(defaults.group == "pgbridge-ingest" && defaults.consumer == "pgbridge" && defaults.start == .earliest)
        #expect(defaults.claimAfter == .seconds(60) && defaults.batchMessages == 1000 && defaults.field == nil)
    }
}
