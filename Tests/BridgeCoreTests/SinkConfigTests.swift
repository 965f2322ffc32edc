import BridgeCore
import BridgeRuntime
import FileSink
import HTTPSink
import Testing

@Suite("Sink configuration")
struct SinkConfigTests {
    func parse(sinks: String, extra: String = "") throws -> PipeConfig {
        try BridgeConfig.parse(
            yaml: """
                postgres: {url: "postgresql://x@h/db"}
                pipes:
                  - name: p
                    source: {tables: [t]}
                    sinks: \(sinks)
                \(extra)
                """, registry: .standard, environment: ["HOOK_TOKEN": "t0k"]
        ).pipes[0]
    }

    func error(sinks: String, extra: String = "") -> ConfigError? {
        do {
            _ = try parse(sinks: sinks, extra: extra)
            return nil
        } catch {
            return error as? ConfigError
        }
    }

    @Test func everySinkKindWithDefaults() throws {
        let pipe = try parse(
            sinks: """
                [{kind: kafka, brokers: "k1:9092, k2:9092"},
                 {kind: rabbitmq, url: "amqp://guest:guest@127.0.0.1:5672/", exchange: pgbridge},
                 {kind: redis, url: "redis://127.0.0.1:6379/0"},
                 {kind: http, url: "https://hooks.example.com/pg", headers: {Authorization: "Bearer ${HOOK_TOKEN}"}},
                 {kind: file, path: "-"}]
                """)
        #expect(pipe.sinks.map(\.name) == ["kafka_1", "rabbitmq_2", "redis_3", "http_4", "file_5"])
        guard let kafka = pipe.sinks[0].settings as? KafkaSinkConfig else { Issue.record("kafka"); return }
        #expect(kafka.brokers == "k1:9092,k2:9092" && kafka.topic.description == "pg.{schema}.{table}")
        #expect(kafka.sasl == .none && !kafka.tls.enabled && kafka.key == nil)
        guard let rabbit = pipe.sinks[1].settings as? RabbitMQSinkConfig else { Issue.record("rabbitmq"); return }
        #expect(rabbit.routingKey.description == "{schema}.{table}.{op}" && rabbit.mandatory && rabbit.persistent)
        guard let redis = pipe.sinks[2].settings as? RedisSinkConfig else { Issue.record("redis"); return }
        #expect(redis.mode == .stream && redis.key.description == "pg:{schema}.{table}" && redis.maxLength == nil)
        guard let http = pipe.sinks[3].settings as? HTTPSinkConfig else { Issue.record("http"); return }
        #expect(http.method == "POST" && http.batchCount == 1 && http.parallelism == 1)
        #expect(http.headers.first?.name == "Authorization" && http.headers.first?.value == "Bearer t0k")
        #expect(pipe.sinks[3].delivery.retries == 5 && pipe.sinks[0].delivery.retries == 3)
        #expect(pipe.deadLetter == nil)
    }

    @Test func deadLetterTargets() throws {
        let file = try parse(sinks: "[{kind: file, path: o}]", extra: "    dead_letter: {kind: file, path: dead.jsonl}")
        guard case .sink(let fileSink) = file.deadLetter, let config = fileSink.settings as? FileSinkConfig else {
            Issue.record("file")
            return
        }
        #expect(config.path == "dead.jsonl")
        let table = try parse(sinks: "[{kind: file, path: o}]", extra: "    dead_letter: {kind: table}")
        guard case .table = table.deadLetter else { Issue.record("table"); return }
        let redis = try parse(
            sinks: "[{kind: file, path: o}]", extra: "    dead_letter: {kind: redis, url: \"redis://h:1/0\", key: dlq}")
        guard case .sink(let sink) = redis.deadLetter, let config = sink.settings as? RedisSinkConfig else {
            Issue.record("redis")
            return
        }
        #expect(config.key.description == "dlq")
        let kafka = try parse(sinks: "[{kind: file, path: o}]", extra: "    dead_letter: {kind: kafka, brokers: k}")
        guard case .sink(let kafkaSink) = kafka.deadLetter, let kafkaConfig = kafkaSink.settings as? KafkaSinkConfig
        else {
            Issue.record("kafka")
            return
        }
        #expect(kafkaConfig.topic.description == "pgbridge.dead_letters")
    }

    @Test(arguments: [
        ("[{kind: kafak, brokers: k}]", "pipes[0].sinks[0].kind", "unknown sink kind"),
        ("[{kind: kafka}]", "pipes[0].sinks[0]", "missing brokers"),
        ("[{kind: kafka, brokers: k, url: x}]", "pipes[0].sinks[0].url", "unknown key"),
        (
            "[{kind: kafka, brokers: k, topic: \"pg.{tabel}\"}]", "pipes[0].sinks[0].topic",
            "unknown placeholder {tabel}"
        ),
        ("[{kind: kafka, brokers: k, sasl: plain}]", "pipes[0].sinks[0].sasl", "needs username and password"),
        ("[{kind: kafka, brokers: k, compression: brotli}]", "pipes[0].sinks[0].compression", "unknown compression"),
        ("[{kind: redis, url: \"http://h\"}]", "pipes[0].sinks[0].url", "expected a redis://"),
        ("[{kind: redis, url: \"redis://h/x\"}]", "pipes[0].sinks[0].url", "not a database number"),
        ("[{kind: redis, url: \"redis://h\", mode: list}]", "pipes[0].sinks[0].mode", "expected one of: stream"),
        (
            "[{kind: redis, url: \"redis://h\", mode: hash, key: \"k:{table}\"}]", "pipes[0].sinks[0].key",
            "must name the row"
        ),
        ("[{kind: redis, url: \"redis://h\", mode: pubsub, maxlen: 5}]", "pipes[0].sinks[0].maxlen", "stream only"),
        ("[{kind: rabbitmq, url: \"amqp//h\"}]", "pipes[0].sinks[0].url", "expected a amqp://"),
        ("[{kind: http, url: \"ftp://h\"}]", "pipes[0].sinks[0].url", "http://"),
        ("[{kind: http, url: \"http://h\", method: GET}]", "pipes[0].sinks[0].method", "POST, PUT or PATCH"),
        ("[{kind: http, url: \"http://h\", preset: slack}]", "pipes[0].sinks[0].preset", "needs a template"),
        (
            "[{kind: http, url: \"http://h\", template: x, batch_count: 5}]", "pipes[0].sinks[0].batch_count",
            "cannot be combined"
        ),
        ("[{kind: http, url: \"http://h\", oauth2: {client_key: k}}]", "pipes[0].sinks[0].oauth2", "missing token_url"),
        ("[{kind: file, path: a, name: x}, {kind: file, path: b, name: x}]", "pipes[0].sinks[1]", "used twice"),
        ("[{kind: file, path: a, retry_interval: 0ms}]", "pipes[0].sinks[0]", "retry_interval"),
    ])
    func invalidSinks(sinks: String, path: String, fragment: String) {
        let e = error(sinks: sinks)
        #expect(e?.path == path, "\(e?.description ?? "no error")")
        #expect(e?.message.contains(fragment) == true, "\(e?.description ?? "no error")")
    }

    @Test func invalidDeadLetter() {
        let e = error(
            sinks: "[{kind: file, path: o}]", extra: "    dead_letter: {kind: redis, url: \"redis://h\", mode: pubsub}")
        #expect(e?.message.contains("must be a stream") == true, "\(e?.description ?? "no error")")
        let kind = error(sinks: "[{kind: file, path: o}]", extra: "    dead_letter: {kind: http, url: \"http://h\"}")
        #expect(kind?.message.contains("unknown dead-letter kind") == true, "\(kind?.description ?? "no error")")
    }

    @Test func sharedClientIdentityIgnoresTopicAndKeyOrder() throws {
        let pipe = try parse(
            sinks: """
                [{kind: kafka, brokers: k, topic: a, properties: {x: "1", y: "2"}},
                 {kind: kafka, topic: b, properties: {y: "2", x: "1"}, brokers: k},
                 {kind: kafka, brokers: k, linger: 50ms}]
                """)
        let identities = pipe.sinks.compactMap { sink -> String? in
            if let kafka = sink.settings as? KafkaSinkConfig { return kafka.connectionIdentity }
            return nil
        }
        #expect(identities[0] == identities[1] && identities[0] != identities[2])
    }
}
