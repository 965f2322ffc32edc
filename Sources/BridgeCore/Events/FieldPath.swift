/// A field of an event named in templates and filter expressions: `op`, `source.table` (or just
/// `table`), `key.id`, `after.temp`, `before.temp`; a bare column name means the row's column
/// (`after`, or `before` for deletes).
public enum FieldPath: Sendable, Equatable, CustomStringConvertible {
    case id, op, db, schema, table, chunk, channel, lsn, commitLSN, commitTime, capture, xid
    /// The whole key, rendered as its values joined by `:` in templates.
    case key
    case keyColumn([UInt8])
    case beforeColumn([UInt8])
    case afterColumn([UInt8])
    /// `after.X`, or `before.X` when the event has no `after`.
    case rowColumn([UInt8])
    case before, after

    static let sourceNames: [String: FieldPath] = [
        "db": .db, "schema": .schema, "table": .table, "chunk": .chunk, "channel": .channel, "lsn": .lsn,
        "commit_lsn": .commitLSN, "commit_time": .commitTime, "capture": .capture, "xid": .xid,
    ]

    /// Parses `op`, `schema`, `source.schema`, `key`, `key.id`, `after.temp`, `temp`; nil when the
    /// text names nothing (empty parts, unknown `source.` field).
    public init?(parsing text: String) {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard !parts.contains(where: \.isEmpty) else { return nil }
        if parts.count == 1 {
            let name = parts[0]
            switch name {
            case "id": self = .id
            case "op": self = .op
            case "key": self = .key
            case "before": self = .before
            case "after": self = .after
            default:
                if let source = Self.sourceNames[name] {
                    self = source
                } else {
                    self = .rowColumn(Array(name.utf8))
                }
            }
            return
        }
        let column = Array(parts[1].utf8)
        switch parts[0] {
        case "source":
            guard let source = Self.sourceNames[parts[1]] else { return nil }
            self = source
        case "key": self = .keyColumn(column)
        case "before": self = .beforeColumn(column)
        case "after": self = .afterColumn(column)
        default: return nil
        }
    }

    /// A column named without `key.`, `after.` or `before.`.
    public var isBareColumn: Bool {
        if case .rowColumn = self { true } else { false }
    }

    public var description: String {
        switch self {
        case .id: "id"
        case .op: "op"
        case .db: "source.db"
        case .schema: "source.schema"
        case .table: "source.table"
        case .chunk: "source.chunk"
        case .channel: "source.channel"
        case .lsn: "source.lsn"
        case .commitLSN: "source.commit_lsn"
        case .commitTime: "source.commit_time"
        case .capture: "source.capture"
        case .xid: "source.xid"
        case .key: "key"
        case .before: "before"
        case .after: "after"
        case .keyColumn(let c): "key.\(String(decoding: c, as: UTF8.self))"
        case .beforeColumn(let c): "before.\(String(decoding: c, as: UTF8.self))"
        case .afterColumn(let c): "after.\(String(decoding: c, as: UTF8.self))"
        case .rowColumn(let c): String(decoding: c, as: UTF8.self)
        }
    }

    /// The JSON value of this field in an event (strings with their quotes); nil when absent.
    public func value(in fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        func quoted(_ contents: Range<Int>?) -> Range<Int>? {
            contents.map { ($0.lowerBound - 1)..<($0.upperBound + 1) }
        }
        let scanner = JSONScanner(bytes)
        switch self {
        case .id: return quoted(fields.id)
        case .op: return quoted(fields.op)
        case .db: return quoted(fields.db)
        case .schema: return quoted(fields.schema)
        case .table: return quoted(fields.table)
        case .chunk: return quoted(fields.chunk)
        case .channel: return quoted(fields.channel)
        case .lsn: return quoted(fields.lsn)
        case .commitLSN: return quoted(fields.commitLSN)
        case .commitTime: return quoted(fields.commitTime)
        case .capture: return quoted(fields.capture)
        case .xid: return fields.xid
        case .key: return fields.key
        case .before: return fields.before
        case .after: return fields.after
        case .keyColumn(let name):
            return fields.key.flatMap { scanner.member(name, of: $0) }
        case .beforeColumn(let name):
            return fields.before.flatMap { scanner.member(name, of: $0) }
        case .afterColumn(let name):
            return fields.after.flatMap { scanner.member(name, of: $0) }
        case .rowColumn(let name):
            return fields.row(in: bytes).flatMap { scanner.member(name, of: $0) }
        }
    }

    /// Appends the field as text: strings unescaped, a whole key as its values joined by `:`,
    /// other values as JSON; nothing when absent or null.
    ///
    /// `keyValuesFrom`: take the key columns' values from this row instead (the old key of an
    /// update, from `before`).
    public func appendText(
        from fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, keyValuesFrom: Range<Int>? = nil,
        into out: inout [UInt8]
    ) {
        let scanner = JSONScanner(bytes)
        if let row = keyValuesFrom {
            switch self {
            case .keyColumn(let name):
                if let value = scanner.member(name, of: row), !scanner.isNull(value) {
                    scanner.appendText(value, into: &out)
                }
                return
            case .key:
                guard let key = fields.key, !scanner.isNull(key) else { return }
                var first = true
                scanner.forEachMember(of: key) { name, _ in
                    if !first { out.append(UInt8(ascii: ":")) }
                    first = false
                    var unescaped: [UInt8] = []
                    scanner.appendUnescaped(name, into: &unescaped)
                    if let value = scanner.member(unescaped, of: row), !scanner.isNull(value) {
                        scanner.appendText(value, into: &out)
                    }
                    return true
                }
                return
            default:
                break
            }
        }
        guard let value = value(in: fields, bytes), !scanner.isNull(value) else { return }
        if self == .key, bytes[value.lowerBound] == 0x7B {
            var first = true
            scanner.forEachMember(of: value) { _, member in
                if !first { out.append(UInt8(ascii: ":")) }
                first = false
                if !scanner.isNull(member) { scanner.appendText(member, into: &out) }
                return true
            }
            return
        }
        scanner.appendText(value, into: &out)
    }
}
