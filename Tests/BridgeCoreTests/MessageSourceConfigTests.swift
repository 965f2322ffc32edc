import BridgeCore
import BridgeRuntime
import KafkaSource
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
        #expect(settings.group == "pgbridge-ingest" && settings.start == .earliest && settings.batchMessages == 2000)
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
                (
                    pipe("kind: kafka, brokers: k:9092, topics: [t], format: debezium"),
                    "not read by message sources yet"
                ),
                (
                    pipe("kind: kafka, brokers: k:9092, topics: [t], properties: {group.id: x}"),
                    "group.id is set by pgbridge"
                ),
                (pipe("kind: kafka, brokers: k:9092, topics: [t], queue: q"), "queue"),
                (pipe("kind: rabbit, url: x"), "expected one of: replication, outbox, notify, kafka"),
            ], base: Self.base)
    }
}
