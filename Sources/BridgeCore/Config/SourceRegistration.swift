import Logging

/// A message source kind's own settings (brokers and topics, a queue, streams): parsed and used
/// by the module that registered the kind, carried by `MessageSourceConfig`.
public protocol SourceSettings: Sendable {}

/// How a message's bytes become a change event (`format:` of a message source).
public enum MessageFormat: String, Sendable, CaseIterable {
    /// One JSON object per message: an `insert` whose `after` is the object.
    case json
    /// pgbridge's own change events, replayed as the changes they describe.
    case native
    /// Debezium change-event values (schemaless envelope), turned back into changes.
    case debezium
    /// Any bytes: an `insert` whose `after` is `{"payload": <text>}`.
    case text
}

/// A source that reads messages from a broker (`kind: kafka|rabbitmq|redis`).
public struct MessageSourceConfig: Sendable {
    public var kind: String
    public var settings: any SourceSettings
    public var format: MessageFormat
    /// The table events of the `json` and `text` formats name: `schema.table` (or `table`, in
    /// `public`), with the kind's placeholders (`{topic}`, `{queue}`, `{stream}`) and `{pipe}`.
    public var table: String
    /// The `after` fields that make the event's key (nil: the kind's default).
    public var key: [String]?

    public init(
        kind: String, settings: any SourceSettings, format: MessageFormat = .json, table: String, key: [String]? = nil
    ) {
        (self.kind, self.settings, self.format, self.table, self.key) = (kind, settings, format, table, key)
    }
}

/// What a source module tells the configuration and the pipe factory about its kind.
public struct SourceRegistration: Sendable {
    /// The `kind:` value, e.g. `kafka`.
    public var kind: String
    /// What `{…}` a `table` template may use besides `{pipe}`, e.g. `topic`.
    public var placeholders: [String]
    /// The `table` template when the configuration names none.
    public var defaultTable: String
    /// Reads the kind's keys (the common ones, `kind`, `format`, `table` and `key`, are read by
    /// the configuration).
    public var parse: @Sendable (_ node: ConfigNode, _ keys: ConfigKeys, _ pipe: String) throws -> any SourceSettings
    /// Builds the source from settings this registration parsed.
    public var make: @Sendable (_ source: MessageSourceConfig, _ context: SourceMakeContext) throws -> any ChangeSource

    public init<Settings: SourceSettings>(
        kind: String, placeholders: [String], defaultTable: String,
        parse: @escaping @Sendable (ConfigNode, ConfigKeys, String) throws -> Settings,
        make: @escaping @Sendable (Settings, MessageSourceConfig, SourceMakeContext) throws -> any ChangeSource
    ) {
        (self.kind, self.placeholders, self.defaultTable) = (kind, placeholders, defaultTable)
        self.parse = { node, keys, pipe in try parse(node, keys, pipe) }
        self.make = { source, context in
            guard let settings = source.settings as? Settings else {
                throw SourceSettingsMismatch(
                    description: "source of kind \(source.kind) holds \(type(of: source.settings)) settings")
            }
            return try make(settings, source, context)
        }
    }
}

/// What a registration's `make` gets besides the settings.
public struct SourceMakeContext: Sendable {
    public var pipe: String
    public var logger: Logger

    public init(pipe: String, logger: Logger) {
        (self.pipe, self.logger) = (pipe, logger)
    }
}

/// A registration was handed settings another registration parsed: a programming error.
public struct SourceSettingsMismatch: Error, CustomStringConvertible {
    public let description: String
}
