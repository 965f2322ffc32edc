import BridgeRuntime
import HTTPSink
import Testing

@testable import BridgeCore

/// The keys a section allows are the keys its parser reads (`ConfigNode.withKeys`): a key that
/// nothing reads there is refused, never accepted and then ignored.
@Suite struct ConfigKeysTests {
    let postgres = "postgres: {url: \"postgresql://x@h/db\"}\n"
    let wire = "wire:\n  users: {bridge: long-enough-1}\n"

    func sinkYAML(_ sink: String) -> String {
        postgres + "pipes:\n  - name: p\n    source: {tables: [public.t]}\n    sinks: [{\(sink)}]\n"
    }

    /// The wire protocol reads only the connection part of a sink's settings: the settings of
    /// what a sink sends (topics, keys, batching, modes, routing) are refused there instead of
    /// being ignored.
    @Test func theWireSectionsRefuseSinkOnlySettings() {
        expectConfigErrors(
            [
                ("  kafka: {brokers: k:9092, topics: [a], linger: 5ms}\n", "wire.kafka.linger: unknown key"),
                (
                    "  kafka: {brokers: k:9092, topics: [a], topic: b}\n",
                    "wire.kafka.topic: unknown key; did you mean 'topics'?"
                ),
                ("  kafka: {brokers: k:9092, topics: [a], compression: lz4}\n", "wire.kafka.compression: unknown key"),
                ("  redis: {url: \"redis://h:6379/0\", streams: [s], mode: hash}\n", "wire.redis.mode: unknown key"),
                ("  redis: {url: \"redis://h:6379/0\", streams: [s], maxlen: 5}\n", "wire.redis.maxlen: unknown key"),
                (
                    "  rabbitmq: {url: \"amqp://h/\", queues: [q], routing_key: x}\n",
                    "wire.rabbitmq.routing_key: unknown key"
                ),
                (
                    "  rabbitmq: {url: \"amqp://h/\", queues: [q], persistent: false}\n",
                    "wire.rabbitmq.persistent: unknown key"
                ),
            ], base: postgres + wire)
    }

    /// What the wire sections do read still parses: the connection settings they share with the
    /// sinks.
    @Test func theWireSectionsKeepTheirConnectionSettings() throws {
        let config = try BridgeConfig.parse(
            yaml: postgres + wire
                + """
                  kafka: {brokers: k:9092, topics: [a], sasl: plain, username: u, password: p, client_id: c, delivery_timeout: 5s}
                  redis: {url: "redis://h:6379/0", streams: [s], timeout: 3s}
                  rabbitmq: {url: "amqp://h/", queues: [q], exchange: ex, heartbeat: 10s, tls: {skip_verify_server: true}}
                """, registry: .standard)
        #expect(config.wire?.kafka?.connection.clientID == "c")
        #expect(config.wire?.kafka?.connection.linger == .zero)
        #expect(config.wire?.redis?.connection.timeout == .seconds(3))
        #expect(config.wire?.rabbitmq?.exchange == "ex")
        #expect(config.wire?.rabbitmq?.connection.mandatory == false)
        #expect(config.wire?.rabbitmq?.connection.tls.skipVerifyServer == true)
    }

    /// A misspelled key is the error even when the parser stopped earlier because of it (the
    /// required key it was meant to be is missing).
    @Test func aMisspellingWinsOverTheMissingKeyItCaused() {
        expectConfigErrors(
            [
                ("kind: kafka, brokrs: \"k:9092\"", "pipes[0].sinks[0].brokrs: unknown key; did you mean 'brokers'?"),
                ("kind: redis, ulr: \"redis://h:6379/0\"", "pipes[0].sinks[0].ulr: unknown key; did you mean 'url'?"),
                ("knd: file, path: x", "pipes[0].sinks[0].knd: unknown key; did you mean 'kind'?"),
            ].map { (sinkYAML($0.0), $0.1) }, base: "")
    }

    /// A key that no parser reads and that resembles nothing is refused with the keys allowed
    /// there, in the order the parser reads them.
    @Test func anUnrelatedKeyListsWhatIsAllowed() {
        expectConfigErrors(
            [
                (
                    sinkYAML("kind: file, path: x, colour: red"),
                    "pipes[0].sinks[0].colour: unknown key; expected one of: kind, name, path, fsync"
                )
            ],
            base: "")
    }

    /// A wrong value is reported as such, not as a misspelling of a key that resembles the one
    /// the parser stopped at.
    @Test func aWrongValueIsNotMistakenForAMisspelling() {
        expectConfigErrors(
            [
                (
                    sinkYAML("kind: file, path: x, retry_interval: soon, max_retry_interval: 1s"),
                    "pipes[0].sinks[0].retry_interval"
                ),
                (
                    postgres + "api: {idle_timeout: 0s, write_timeout: 5s}\n",
                    "api.idle_timeout: must be at least 1s"
                ),
            ], base: "")
        do {
            _ = try BridgeConfig.parse(
                yaml: sinkYAML("kind: file, path: x, retry_interval: soon, max_retry_interval: 1s"), registry: .standard
            )
            Issue.record("parsed a wrong retry_interval")
        } catch {
            #expect(!"\(error)".contains("unknown key"), "\(error)")
        }
    }

    /// A failure that has nothing to do with an extra key stays the error.
    @Test func aRealMissingKeyIsStillNamed() {
        expectConfigErrors([(sinkYAML("kind: kafka, topic: t"), "missing brokers")], base: "")
    }

    /// Disabled OAuth2 settings are still read and checked: a misspelling is not hidden by
    /// `enabled: false`.
    @Test func disabledOAuth2SettingsAreStillChecked() throws {
        expectConfigErrors(
            [
                (
                    sinkYAML("kind: http, url: \"https://h/x\", oauth2: {enabled: false, tokn_url: \"https://h/t\"}"),
                    "oauth2.tokn_url: unknown key; did you mean 'token_url'?"
                )
            ], base: "")
        let config = try BridgeConfig.parse(
            yaml: sinkYAML("kind: http, url: \"https://h/x\", oauth2: {enabled: false, token_url: \"https://h/t\"}"),
            registry: .standard)
        guard let http = config.pipes[0].sinks[0].settings as? HTTPSinkConfig else {
            Issue.record("expected an http sink")
            return
        }
        #expect(http.oauth2 == nil)
    }

    /// A processor is one key; a misspelled kind is named as such.
    @Test func aMisspelledProcessorIsNamed() {
        expectConfigErrors(
            [
                (
                    postgres
                        + "pipes:\n  - name: p\n    source: {tables: [public.t]}\n    processors: [{filtr: \"op = 'insert'\"}]\n    sinks: [{kind: file, path: x}]\n",
                    "processors[0].filtr: unknown key; did you mean 'filter'?"
                ),
                (
                    postgres
                        + "pipes:\n  - name: p\n    source: {tables: [public.t]}\n    processors: [{mask: {columns: [a], wiht: md5}}]\n    sinks: [{kind: file, path: x}]\n",
                    "processors[0].mask.wiht: unknown key; did you mean 'with'?"
                ),
            ], base: "")
    }

    /// Every source kind reads its own keys: an outbox setting on a replication source is refused.
    @Test func sourceKindsRefuseEachOthersKeys() {
        expectConfigErrors(
            [
                (
                    postgres
                        + "pipes:\n  - name: p\n    source: {tables: [public.t], poll_interval: 1s}\n    sinks: [{kind: file, path: x}]\n",
                    "pipes[0].source.poll_interval: unknown key"
                ),
                (
                    postgres
                        + "pipes:\n  - name: p\n    source: {kind: notify, channel: c, batch_rows: 5}\n    sinks: [{kind: file, path: x}]\n",
                    "pipes[0].source.batch_rows: unknown key"
                ),
            ], base: "")
    }
}
