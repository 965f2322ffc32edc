import Foundation
import Yams

/// Who wrote a configuration: the operator's file may do anything the process may; a pipe
/// created through the HTTP API (an admin token) must not reach beyond pgbridge itself.
public enum ConfigTrust: Sendable, Equatable {
    case operatorFile
    /// File paths must stay inside `stateDirectory`; librdkafka `properties` are limited to
    /// tuning keys.
    case api(stateDirectory: String)
}

/// A YAML node with its key path, for reading configuration with precise errors. Sink modules
/// read their kind's keys through it (see `SinkRegistration`).
public struct ConfigNode {
    let node: Node
    /// `pipes[0].sinks[1].topic`: where an error points.
    public let path: String
    let environment: [String: String]
    public internal(set) var trust: ConfigTrust = .operatorFile
    /// The sink kinds this configuration may use.
    let registry: ConfigRegistry

    init(
        node: Node, path: String, environment: [String: String], trust: ConfigTrust = .operatorFile,
        registry: ConfigRegistry
    ) {
        self.node = node
        self.path = path
        self.environment = environment
        self.trust = trust
        self.registry = registry
    }

    var line: Int? { node.mark?.line }

    public func error(_ message: String) -> ConfigError {
        ConfigError(path: path, message: message, line: line)
    }

    func child(_ key: String, _ node: Node) -> ConfigNode {
        ConfigNode(
            node: node, path: path.isEmpty ? key : "\(path).\(key)", environment: environment, trust: trust,
            registry: registry)
    }

    /// The entries of a mapping in document order; `expected` says what it maps, for the error
    /// when the node is not a mapping (e.g. "header names to values").
    public func mappingEntries(expected: String) throws -> [(key: String, value: ConfigNode)] {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping of \(expected)") }
        return try mapping.map { key, value in
            guard let name = key.string, !name.isEmpty else { throw error("keys must be strings") }
            return (name, child(name, value))
        }
    }

    var typeName: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if scalar.style == .plain {
                if node.int != nil { return "a number" }
                if node.bool != nil { return "a boolean" }
                if node.null != nil { return "null" }
            }
            return "a string"
        }
    }

    var isNull: Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain, node.null != nil { return true }
        return false
    }

    /// Parses this mapping with `body`, which reads its keys through `ConfigKeys`. The keys
    /// `body` asks for are the allowed keys: a key it never asks for is refused ("unknown key",
    /// with the closest allowed key), so no key can be accepted and then ignored. When `body`
    /// fails because a key is missing, a key that looks like a misspelling of one it asked for
    /// is the error instead (the misspelling is why the key is missing).
    public func withKeys<T>(_ body: (ConfigKeys) throws -> T) throws -> T {
        try parse { _, keys in try body(keys) }
    }

    /// `withKeys` for a parser that also takes the node (`BridgeConfig.parseAPI` and the like).
    public func parse<T>(_ parser: (ConfigNode, ConfigKeys) throws -> T) throws -> T {
        let keys = try ConfigKeys(self)
        let result: T
        do {
            result = try parser(self, keys)
        } catch let error as ConfigError where error.message.hasPrefix("missing") {
            if let misspelled = keys.unknownKeyError(misspellingsOnly: true) { throw misspelled }
            throw error
        }
        if let unknown = keys.unknownKeyError(misspellingsOnly: false) { throw unknown }
        return result
    }

    public func string() throws -> String {
        guard case .scalar(let scalar) = node else {
            throw error("expected a string, got \(typeName)")
        }
        if isNull { throw error("expected a string, got null") }
        return try interpolate(scalar.string)
    }

    public func bool() throws -> Bool {
        let text = try string()
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error("expected true or false, got '\(text)'")
        }
    }

    public func int(range: ClosedRange<Int>) throws -> Int {
        let text = try string()
        guard let value = Int(text) else { throw error("expected a whole number, got '\(text)'") }
        guard range.contains(value) else {
            throw error("\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// `500ms`, `10s`, `2m`, `1h` (a bare number means seconds).
    public func duration() throws -> Duration {
        let text = try string().trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let number = Double(text.dropLast(suffix.count)), number >= 0 {
                return .milliseconds(Int64(number * scale * 1000))
            }
        }
        if let number = Double(text), number >= 0 { return .milliseconds(Int64(number * 1000)) }
        throw error("expected a duration such as 500ms, 10s or 2m, got '\(text)'")
    }

    public func list() throws -> [ConfigNode] {
        guard case .sequence(let sequence) = node else {
            throw error("expected a list, got \(typeName)")
        }
        return sequence.enumerated().map { index, element in
            ConfigNode(
                node: element, path: "\(path)[\(index)]", environment: environment, trust: trust, registry: registry)
        }
    }

    /// Replaces `${NAME}` and `${NAME:-default}`; an unset variable without a default is an error.
    func interpolate(_ text: String) throws -> String {
        guard text.contains("${") else { return text }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[rest.startIndex..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw error("unterminated '${' in value")
            }
            let expression = rest[start.upperBound..<end]
            let name: Substring
            let fallback: Substring?
            if let separator = expression.range(of: ":-") {
                name = expression[expression.startIndex..<separator.lowerBound]
                fallback = expression[separator.upperBound...]
            } else {
                name = expression
                fallback = nil
            }
            if let value = environment[String(name)], !value.isEmpty {
                result += value
            } else if let fallback {
                result += fallback
            } else {
                throw error("environment variable \(name) is not set: export it or write ${\(name):-default}")
            }
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }
}

/// The keys of one mapping as its parser reads them (see `ConfigNode.withKeys`).
public final class ConfigKeys {
    public let node: ConfigNode
    /// The mapping's entries in document order.
    private let entries: [(key: String, value: ConfigNode, line: Int?)]
    private let values: [String: ConfigNode]
    /// Every key the parser asked for, in the order it asked.
    private(set) var asked: [String] = []

    init(_ node: ConfigNode) throws {
        guard case .mapping(let mapping) = node.node else {
            throw node.error("expected a mapping, got \(node.typeName)")
        }
        self.node = node
        var entries: [(key: String, value: ConfigNode, line: Int?)] = []
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else { throw node.error("keys must be strings") }
            entries.append((key, node.child(key, valueNode), keyNode.mark?.line))
        }
        self.entries = entries
        values = Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// The value of `key` (nil when absent); asking makes the key allowed.
    public subscript(key: String) -> ConfigNode? {
        if !asked.contains(key) { asked.append(key) }
        return values[key]
    }

    /// The keys present, in document order (none of them is asked for by this).
    public var present: [String] { entries.map(\.key) }

    /// The first present key nobody asked for, as an error with a hint; with
    /// `misspellingsOnly`, only a key close to one that was asked for.
    func unknownKeyError(misspellingsOnly: Bool) -> ConfigError? {
        for entry in entries where !asked.contains(entry.key) {
            var message = "unknown key"
            if let suggestion = Suggestion.closest(to: entry.key, in: asked) {
                message += "; did you mean '\(suggestion)'?"
            } else if misspellingsOnly {
                continue
            } else {
                message += "; expected one of: \(asked.joined(separator: ", "))"
            }
            return ConfigError(path: entry.value.path, message: message, line: entry.line)
        }
        return nil
    }
}
