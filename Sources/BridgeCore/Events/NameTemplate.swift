/// A name built from an event: topics, routing keys, Redis keys (`pg.{schema}.{table}`,
/// `{schema}.{table}.{op}`, `pg:{table}:{key}`). Placeholders are `FieldPath`s; `{pipe}` is the
/// pipe's name.
public struct NameTemplate: Sendable, Equatable, CustomStringConvertible {
    enum Part: Sendable, Equatable {
        case literal([UInt8])
        case field(FieldPath)
    }

    let parts: [Part]
    public let description: String

    /// Parses a template; throws a message naming the bad placeholder.
    public init(_ text: String, pipe: String) throws(TemplateError) {
        var parts: [Part] = []
        var literal: [UInt8] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            literal += Array(rest[..<open].utf8)
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw TemplateError(message: "'{' without a closing '}' in \"\(text)\"")
            }
            let name = rest[rest.index(after: open)..<close].trimmingSpaces
            if name == "pipe" {
                literal += Array(pipe.utf8)
            } else {
                // A bare word must name an event field: a column needs key./after./before., so a
                // typo such as {tabel} is an error instead of an empty part.
                guard let path = FieldPath(parsing: name), !path.isBareColumn else {
                    throw TemplateError(
                        message: "unknown placeholder {\(name)} in \"\(text)\"; use schema, table, op, db, chunk, "
                            + "channel, pipe, key, key.COLUMN, after.COLUMN or before.COLUMN")
                }
                if !literal.isEmpty {
                    parts.append(.literal(literal))
                    literal = []
                }
                parts.append(.field(path))
            }
            rest = rest[rest.index(after: close)...]
        }
        if rest.contains("}") { throw TemplateError(message: "'}' without an opening '{' in \"\(text)\"") }
        literal += Array(rest.utf8)
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
        self.description = text
    }

    /// True when the rendering does not depend on the event.
    public var isConstant: Bool { parts.allSatisfy { if case .literal = $0 { true } else { false } } }

    /// True when the rendering depends only on the table and the operation (so it can be cached
    /// per table).
    public var dependsOnRowValues: Bool {
        parts.contains {
            switch $0 {
            case .literal: false
            case .field(let path):
                switch path {
                case .db, .schema, .table, .op, .capture, .channel: false
                default: true
                }
            }
        }
    }

    public func render(
        _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, keyValuesFrom: Range<Int>? = nil,
        into out: inout [UInt8]
    ) {
        for part in parts {
            switch part {
            case .literal(let literal): out.append(contentsOf: literal)
            case .field(let path): path.appendText(from: fields, bytes, keyValuesFrom: keyValuesFrom, into: &out)
            }
        }
    }

    /// A Redis `MATCH` pattern for every name this template gives the events of one table:
    /// parts that depend on the row become `*`, literal glob characters are escaped.
    public func globPattern(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var text: [UInt8] = []
        for part in parts {
            text.removeAll(keepingCapacity: true)
            switch part {
            case .literal(let literal): text = literal
            case .field(let path):
                switch path {
                case .db, .schema, .table, .chunk, .channel, .capture: path.appendText(from: fields, bytes, into: &text)
                default:
                    out.append(UInt8(ascii: "*"))
                    continue
                }
            }
            for byte in text {
                if byte == UInt8(ascii: "*") || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "[")
                    || byte == UInt8(ascii: "]") || byte == UInt8(ascii: "\\")
                {
                    out.append(UInt8(ascii: "\\"))
                }
                out.append(byte)
            }
        }
        return out
    }

    public func render(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        render(fields, bytes, into: &out)
        return out
    }
}

public struct TemplateError: Error, Sendable {
    public var message: String
}

extension Substring {
    var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
