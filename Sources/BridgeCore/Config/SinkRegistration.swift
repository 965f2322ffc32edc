import Logging

/// A sink kind's own settings (`KafkaSinkConfig`, a file path, …): parsed and used by the
/// module that registered the kind, carried by `SinkConfig` without the core knowing the type.
public protocol SinkSettings: Sendable {
    /// Why a route's fixed `topic` cannot be this sink's destination (nil = it can).
    func problem(withFixedDestination destination: NameTemplate) -> String?
}

extension SinkSettings {
    public func problem(withFixedDestination destination: NameTemplate) -> String? { nil }
}

/// What a sink module tells the configuration and the pipe factory about its kind: the parser
/// (whose reads are the allowed keys, see `ConfigNode.withKeys`) and the constructor.
public struct SinkRegistration: Sendable {
    /// The `kind:` value, e.g. `kafka`.
    public var kind: String
    /// Retries before a rejected event is dead-lettered, unless the sink says `retries:`.
    public var defaultRetries: Int
    /// Reads the kind's keys. `context.deadLetter` asks for defaults that need no event fields.
    public var parse:
        @Sendable (_ node: ConfigNode, _ keys: ConfigKeys, _ context: SinkParseContext) throws -> any SinkSettings
    /// Builds the sink from settings this registration parsed.
    public var make: @Sendable (_ sink: SinkConfig, _ context: SinkMakeContext) throws -> any EventSink
    /// Whether a pipe may send its dead letters to this kind (`dead_letter: {kind: …}`).
    public var takesDeadLetters: Bool

    /// `parse` returns the kind's own settings type; `make` gets them back typed (a sink whose
    /// settings are of another type is a programming error, `SinkSettingsMismatch`).
    public init<Settings: SinkSettings>(
        kind: String, defaultRetries: Int = DeliveryOptions().retries, takesDeadLetters: Bool,
        parse: @escaping @Sendable (ConfigNode, ConfigKeys, SinkParseContext) throws -> Settings,
        make: @escaping @Sendable (Settings, SinkConfig, SinkMakeContext) throws -> any EventSink
    ) {
        (self.kind, self.defaultRetries, self.takesDeadLetters) = (kind, defaultRetries, takesDeadLetters)
        self.parse = { node, keys, context in try parse(node, keys, context) }
        self.make = { sink, context in
            guard let settings = sink.settings as? Settings else { throw SinkSettingsMismatch(sink) }
            return try make(settings, sink, context)
        }
    }
}

/// Where a sink's settings are read.
public struct SinkParseContext: Sendable {
    /// The pipe's name (templates may use `{pipe}`).
    public var pipe: String
    /// The settings are a pipe's dead-letter target: dead-letter records are not change events,
    /// so default names must not need event fields.
    public var deadLetter: Bool

    public init(pipe: String, deadLetter: Bool = false) {
        self.pipe = pipe
        self.deadLetter = deadLetter
    }
}

/// What a registration's `make` gets besides the settings.
public struct SinkMakeContext {
    public var pipe: String
    public var logger: Logger
    /// Clients shared by sinks with equal connection settings, across the factory's pipes.
    public let clients: SharedClients
    public var format = EventFormat.native
    /// pgbridge's version (HTTP `User-Agent`, CloudEvents `source`).
    public var version = "dev"
    /// The routes' destinations, by route index (nil = the route keeps the sink's own).
    public var routeDestinations: [NameTemplate?] = []
    /// The pipe's source: what a sink that writes into PostgreSQL compares itself with.
    public var source: SinkSourceInfo?

    public init(pipe: String, logger: Logger, clients: SharedClients) {
        (self.pipe, self.logger, self.clients) = (pipe, logger, clients)
    }
}

/// The pipe's source as a sink sees it.
public struct SinkSourceInfo: Sendable {
    /// The database the pipe captures from (nil for a message source: its events come from a
    /// broker, and their tables have no definition to copy).
    public var postgres: PostgresConfig?
    /// Names the stream of events (`slot:<name>`, `outbox`, `notify`, `kafka`): a sink that
    /// records positions keeps one per stream (and one per Kafka partition its events name).
    public var streamID: String

    public init(postgres: PostgresConfig?, streamID: String) {
        (self.postgres, self.streamID) = (postgres, streamID)
    }
}

/// Connections kept by one pipe factory and shared by every sink whose connection identity
/// (its kind and connection settings) is equal.
public final class SharedClients {
    private var clients: [String: Any] = [:]

    public init() {}

    /// The client for `identity`, made by `make` the first time.
    public func client<Client>(_ identity: String, make: () throws -> Client) rethrows -> Client {
        let key = "\(Client.self)\u{0}\(identity)"
        if let existing = clients[key] as? Client { return existing }
        let made = try make()
        clients[key] = made
        return made
    }
}

/// The sink and message source kinds and the filter language a configuration may use: what
/// the executable's modules registered.
public struct ConfigRegistry: Sendable {
    public private(set) var sinks: [SinkRegistration]
    /// Message sources (the PostgreSQL sources, replication, outbox and notify, are built in).
    public private(set) var sources: [SourceRegistration]
    /// nil = `filter` processors are refused.
    public private(set) var filterLanguage: FilterLanguage?

    public init(
        sinks: [SinkRegistration], sources: [SourceRegistration] = [], filterLanguage: FilterLanguage? = nil
    ) {
        self.sinks = sinks
        self.sources = sources
        self.filterLanguage = filterLanguage
    }

    public func sink(_ kind: String) -> SinkRegistration? { sinks.first { $0.kind == kind } }

    public var sinkKinds: [String] { sinks.map(\.kind) }

    public func source(_ kind: String) -> SourceRegistration? { sources.first { $0.kind == kind } }

}

/// A registration was handed settings another registration parsed: a programming error.
public struct SinkSettingsMismatch: Error, CustomStringConvertible {
    public let description: String

    public init(_ sink: SinkConfig) {
        description = "sink '\(sink.name)' of kind \(sink.kind) holds \(type(of: sink.settings)) settings"
    }
}
