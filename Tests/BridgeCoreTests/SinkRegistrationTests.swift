import BridgeCore
import BridgeRuntime
import Testing

/// Sink kinds come from the registry the configuration is parsed with: each module registers
/// its parser (whose reads are the allowed keys) and its constructor; the core lists no kind.
@Suite struct SinkRegistrationTests {
    struct ProbeSettings: SinkSettings {
        var level: Int
        var deadLetter: Bool

        func problem(withFixedDestination destination: NameTemplate) -> String? {
            "needs a destination per row"
        }
    }

    struct Unused: Error {}

    static let probe = SinkRegistration(
        kind: "probe", defaultRetries: 7, takesDeadLetters: true,
        parse: { node, keys, context in
            guard let level = keys["level"] else { throw node.error("missing level: how loud the probe is") }
            return ProbeSettings(level: try level.int(range: 0...10), deadLetter: context.deadLetter)
        },
        make: { _, _, _ in throw Unused() })

    static let quiet = SinkRegistration(
        kind: "quiet", takesDeadLetters: false,
        parse: { _, _, _ in ProbeSettings(level: 0, deadLetter: false) },
        make: { _, _, _ in throw Unused() })

    static let registry = ConfigRegistry(sinks: [probe, quiet])

    static func pipe(_ sinks: String, _ extra: String = "") throws -> PipeConfig {
        try BridgeConfig.parse(
            yaml: """
                postgres: {url: "postgresql://x@h/db"}
                pipes:
                  - name: p
                    source: {tables: [public.t]}
                    sinks: \(sinks)
                \(extra)
                """, registry: registry
        ).pipes[0]
    }

    static func error(_ sinks: String, _ extra: String = "") -> String {
        do {
            _ = try pipe(sinks, extra)
            return "parsed"
        } catch {
            return "\(error)"
        }
    }

    @Test func aRegisteredKindParsesItsOwnKeys() throws {
        let pipe = try Self.pipe("[{kind: probe, level: 3}, {kind: quiet, retries: 2}]")
        let probe = try #require(pipe.sinks[0].settings as? ProbeSettings)
        #expect(pipe.sinks[0].kind == "probe" && pipe.sinks[0].name == "probe_1")
        #expect(probe.level == 3 && !probe.deadLetter)
        #expect(pipe.sinks[0].delivery.retries == 7, "the registration's default retries")
        #expect(pipe.sinks[1].delivery.retries == 2)
    }

    @Test func keysTheParserDoesNotReadAreRefused() {
        let unknown = Self.error("[{kind: probe, level: 3, volume: 11}]")
        #expect(unknown.contains("pipes[0].sinks[0].volume: unknown key"), "\(unknown)")
        let misspelled = Self.error("[{kind: probe, levle: 3}]")
        #expect(misspelled.contains("did you mean 'level'"), "\(misspelled)")
        let missing = Self.error("[{kind: probe}]")
        #expect(missing.contains("missing level"), "\(missing)")
    }

    @Test func onlyRegisteredKindsAreAccepted() {
        let kafka = Self.error("[{kind: kafka, brokers: k}]")
        #expect(kafka.contains("unknown sink kind 'kafka'; expected one of: probe, quiet"), "\(kafka)")
        let standard = Result {
            try BridgeConfig.parsePipe(
                text: #"{"name": "p", "source": {"tables": ["t"]}, "sinks": [{"kind": "probe", "level": 1}]}"#,
                registry: .standard)
        }
        #expect(throws: ConfigError.self) { try standard.get() }
    }

    @Test func deadLetterTargetsAreKindsThatTakeThem() throws {
        let probe = try Self.pipe("[{kind: quiet}]", "    dead_letter: {kind: probe, level: 4}")
        guard case .sink(let sink) = probe.deadLetter, let settings = sink.settings as? ProbeSettings else {
            Issue.record("expected a probe dead-letter target")
            return
        }
        #expect(settings.deadLetter && settings.level == 4 && sink.name == "dead_letter")
        let table = try Self.pipe("[{kind: quiet}]", "    dead_letter: {kind: table}")
        guard case .table = table.deadLetter else {
            Issue.record("expected the table target")
            return
        }
        let quiet = Self.error("[{kind: quiet}]", "    dead_letter: {kind: quiet}")
        #expect(quiet.contains("unknown dead-letter kind 'quiet'; expected probe or table"), "\(quiet)")
        let retries = Self.error("[{kind: quiet}]", "    dead_letter: {kind: probe, level: 1, retries: 3}")
        #expect(retries.contains("dead_letter.retries: unknown key"), "no delivery settings: \(retries)")
    }

    @Test func aRouteAsksTheSinksSettingsAboutAFixedDestination() {
        let message = Self.error(
            "[{kind: probe, level: 1}]", "    processors: [{route: {tables: [public.t], topic: fixed}}]")
        #expect(message.contains("sink 'probe' needs a destination per row"), "\(message)")
    }

    struct EveryOther: EventPredicate {
        let text: String
        var description: String { text }
        func matches(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool { true }
    }

    struct Unparsable: Error, CustomStringConvertible {
        var description: String { "no such word at position 1" }
    }

    @Test func filtersAreCompiledByTheRegisteredLanguage() throws {
        let processors = "    processors: [{filter: \"op = 'insert'\"}]"
        let none = Self.error("[{kind: quiet}]", processors)
        #expect(none.contains("processors[0].filter: filter expressions are not available here"), "\(none)")
        let language = FilterLanguage { text in
            guard text.hasPrefix("op") else { throw Unparsable() }
            return EveryOther(text: text)
        }
        let registry = ConfigRegistry(sinks: [Self.quiet], filterLanguage: language)
        func parse(_ filter: String) throws -> PipeConfig {
            try BridgeConfig.parsePipe(
                text:
                    #"{"name": "p", "source": {"tables": ["t"]}, "sinks": [{"kind": "quiet"}], "processors": [{"filter": "\#(filter)"}]}"#,
                registry: registry)
        }
        guard case .filter(let predicate) = try parse("op = 1").processors.first else {
            Issue.record("expected a filter")
            return
        }
        #expect(predicate is EveryOther && predicate.description == "op = 1")
        #expect {
            try parse("xyz")
        } throws: { error in
            "\(error)".contains("processors[0].filter: invalid filter: no such word at position 1 of \"xyz\"")
        }
    }

    @Test func theStandardRegistryHasEveryShippedKindOnce() {
        let kinds = ConfigRegistry.standard.sinkKinds
        #expect(kinds == ["file", "kafka", "rabbitmq", "redis", "http", "postgres"])
        #expect(Set(kinds).count == kinds.count)
        #expect(
            ConfigRegistry.standard.sinks.filter(\.takesDeadLetters).map(\.kind) == [
                "file", "kafka", "rabbitmq", "redis",
            ])
    }
}
