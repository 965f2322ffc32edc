/// One processor of a pipe, applied in order to every event before it is encoded for the sinks.
public enum ProcessorConfig: Sendable {
    /// Keep only events for which the predicate holds (compiled by the registry's filter
    /// language, which the Processing module provides).
    case filter(any EventPredicate)
    /// Replace column values with a hash or `***` (in `key`, `before` and `after`).
    case mask(MaskConfig)
    /// Remove columns from `before` and `after`.
    case drop(DropConfig)
    /// Send matching tables' events only to some sinks and/or under another topic/key.
    case route(RouteConfig)
}

public enum MaskMethod: String, Sendable, CaseIterable {
    /// Lower-case hex SHA-256 of the value's text: equal values stay equal (joins still work).
    case sha256
    case md5
    /// The string `***`.
    case redact
}

public struct MaskConfig: Sendable {
    public var columns: [String]
    public var method: MaskMethod
    /// nil = every table.
    public var tables: [TablePattern]?

    public init(columns: [String], method: MaskMethod, tables: [TablePattern]? = nil) {
        self.columns = columns
        self.method = method
        self.tables = tables
    }
}

public struct DropConfig: Sendable {
    public var columns: [String]
    public var tables: [TablePattern]?

    public init(columns: [String], tables: [TablePattern]? = nil) {
        self.columns = columns
        self.tables = tables
    }
}

public struct RouteConfig: Sendable {
    public var tables: [TablePattern]
    /// Names of the pipe's sinks that receive these events; nil = all of them.
    public var sinks: [String]?
    /// Replaces the sinks' topic (Kafka), routing key (RabbitMQ) or key (Redis) for these events.
    public var destination: NameTemplate?

    public init(tables: [TablePattern], sinks: [String]? = nil, destination: NameTemplate? = nil) {
        self.tables = tables
        self.sinks = sinks
        self.destination = destination
    }
}

extension TablePattern {
    /// Whether the pattern covers `schema.table` (escaped JSON string contents).
    public func matches(schema: Range<Int>?, table: Range<Int>?, in bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let schema, let table else { return false }
        let scanner = JSONScanner(bytes)
        guard scanner.keyEquals(schema, Array(self.schema.utf8)) else { return false }
        guard let name = self.table else { return true }
        return scanner.keyEquals(table, Array(name.utf8))
    }
}

/// A compiled `filter` expression: whether an event passes. The language that compiles the
/// text lives in the module that registered it (`ConfigRegistry.filterLanguage`).
public protocol EventPredicate: Sendable, CustomStringConvertible {
    func matches(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool
}

/// Compiles `filter:` text; a thrown error's description says what is wrong and where.
public struct FilterLanguage: Sendable {
    public var compile: @Sendable (String) throws -> any EventPredicate

    public init(compile: @escaping @Sendable (String) throws -> any EventPredicate) {
        self.compile = compile
    }
}
