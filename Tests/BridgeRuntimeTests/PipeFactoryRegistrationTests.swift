import BridgeCore
import BridgeRuntime
import Logging
import Testing

/// The pipe factory makes every sink through its kind's registration and shares clients by
/// connection identity.
@Suite struct PipeFactoryRegistrationTests {
    struct CountingSettings: SinkSettings {
        var identity: String
    }

    final class Client: Sendable {}

    struct CountingSink: EventSink {
        let client: Client
        let pipe: String
        var description: String { "counting:\(pipe)" }
        func open() async throws {}
        func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult { .delivered }
        func close() async {}
    }

    static let registration = SinkRegistration(
        kind: "counting", takesDeadLetters: false,
        parse: { _, keys, _ in CountingSettings(identity: try keys["identity"]?.string() ?? "") },
        make: { settings, _, context in
            CountingSink(client: context.clients.client(settings.identity) { Client() }, pipe: context.pipe)
        })

    func factory(_ registry: ConfigRegistry) -> PipeFactory {
        PipeFactory(
            config: BridgeConfig(postgres: PostgresConfig(url: "postgresql://x@h/db"), pipes: []), registry: registry,
            version: "test", logger: Logger(label: "test"))
    }

    func sink(_ identity: String) -> SinkConfig {
        SinkConfig(name: "s", kind: "counting", settings: CountingSettings(identity: identity))
    }

    @Test func sinksAreMadeByTheirRegistrationAndShareClients() throws {
        let factory = factory(ConfigRegistry(sinks: [Self.registration]))
        let first = try #require(try factory.makeSink(sink("a"), pipe: "p1") as? CountingSink)
        let second = try #require(try factory.makeSink(sink("a"), pipe: "p2") as? CountingSink)
        let other = try #require(try factory.makeSink(sink("b"), pipe: "p1") as? CountingSink)
        #expect(first.description == "counting:p1" && second.description == "counting:p2")
        #expect(first.client === second.client, "equal identities share a client across pipes")
        #expect(first.client !== other.client)
    }

    @Test func anUnregisteredKindOrForeignSettingsAreRefused() {
        let factory = factory(ConfigRegistry(sinks: []))
        #expect(throws: ConfigError.self) { try factory.makeSink(sink("a"), pipe: "p") }
        let registered = self.factory(ConfigRegistry(sinks: [Self.registration]))
        let mismatched = SinkConfig(
            name: "s", kind: "counting",
            settings: RedisSinkConfig(
                url: "redis://h:1/0", mode: .stream, key: try! NameTemplate("k", pipe: "p")))
        #expect(throws: SinkSettingsMismatch.self) { try registered.makeSink(mismatched, pipe: "p") }
    }
}
