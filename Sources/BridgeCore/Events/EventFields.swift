import Glibc

/// Where the parts of one native event lie in its bytes, found in one pass.
///
/// Sinks and processors read topics, keys and columns through these ranges instead of decoding
/// the event: no allocation per event. Ranges are absolute offsets into the scanned buffer;
/// string fields (`id`, `op`, `schema`, …) cover the contents without quotes (still escaped),
/// JSON fields (`key`, `before`, `after`, `source`) the whole value.
public struct EventFields: Sendable {
    public var event: Range<Int>
    public var id: Range<Int>?
    public var op: Range<Int>?
    public var source: Range<Int>?
    public var db: Range<Int>?
    public var schema: Range<Int>?
    public var table: Range<Int>?
    public var chunk: Range<Int>?
    public var channel: Range<Int>?
    public var lsn: Range<Int>?
    public var commitLSN: Range<Int>?
    public var commitTime: Range<Int>?
    public var capture: Range<Int>?
    public var xid: Range<Int>?
    public var key: Range<Int>?
    public var before: Range<Int>?
    public var after: Range<Int>?

    public init(event: Range<Int>) {
        self.event = event
    }

    /// Scans the event object at `event` in `bytes`.
    public static func scan(_ bytes: UnsafeBufferPointer<UInt8>, event: Range<Int>) -> EventFields {
        scan(bytes, event: event, visitAfter: false) { _, _ in }
    }

    /// Scans the event and calls `afterMembers` with the key (contents) and value range of each
    /// member of its `after` object, in the same pass (the row is read once, not twice).
    public static func scan(
        _ bytes: UnsafeBufferPointer<UInt8>, event: Range<Int>, afterMembers: (Range<Int>, Range<Int>) -> Void
    ) -> EventFields {
        scan(bytes, event: event, visitAfter: true, afterMembers)
    }

    @inline(__always)
    private static func scan(
        _ bytes: UnsafeBufferPointer<UInt8>, event: Range<Int>, visitAfter: Bool,
        _ afterMembers: (Range<Int>, Range<Int>) -> Void
    ) -> EventFields {
        var fields = EventFields(event: event)
        let scanner = JSONScanner(bytes)
        let start = scanner.skipWhitespace(event.lowerBound)
        let object = start..<event.upperBound
        _ = scanner.forEachMemberStart(of: object) { key, valueStart in
            let valueEnd: Int
            let isObject = valueStart < object.upperBound && bytes[valueStart] == 0x7B
            if isObject, bytes[key.lowerBound] == UInt8(ascii: "s"), key.count == 6 {
                // The source block: its members are read while its end is found.
                guard
                    let end = scanner.visitMembers(
                        of: valueStart..<object.upperBound,
                        { name, value in sourceMember(name, value, bytes, into: &fields) })
                else { return nil }
                valueEnd = end
            } else if visitAfter, isObject, bytes[key.lowerBound] == UInt8(ascii: "a"), key.count == 5 {
                guard let end = scanner.visitMembers(of: valueStart..<object.upperBound, afterMembers) else {
                    return nil
                }
                valueEnd = end
            } else {
                valueEnd = scanner.valueEnd(valueStart)
            }
            guard valueStart < valueEnd, valueEnd <= object.upperBound else { return nil }
            let value = valueStart..<valueEnd
            switch bytes[key.lowerBound] {
            case UInt8(ascii: "i") where key.count == 2:
                fields.id = stringContents(value, bytes)
            case UInt8(ascii: "o") where key.count == 2:
                fields.op = stringContents(value, bytes)
            case UInt8(ascii: "s") where key.count == 6:
                fields.source = value
                if !isObject { scanSource(value, scanner, into: &fields) }
            case UInt8(ascii: "k") where key.count == 3:
                fields.key = value
            case UInt8(ascii: "b") where key.count == 6:
                fields.before = value
            case UInt8(ascii: "a") where key.count == 5:
                fields.after = value
            default:
                break
            }
            return valueEnd
        }
        return fields
    }

    private static func scanSource(_ source: Range<Int>, _ scanner: JSONScanner, into fields: inout EventFields) {
        scanner.forEachMember(of: source) { key, value in
            sourceMember(key, value, scanner.bytes, into: &fields)
            return true
        }
    }

    @inline(__always)
    private static func sourceMember(
        _ key: Range<Int>, _ value: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>, into fields: inout EventFields
    ) {
        func matches(_ literal: StaticString) -> Bool {
            memcmp(bytes.baseAddress! + key.lowerBound, literal.utf8Start, key.count) == 0
        }
        switch key.count {
        case 2 where matches("db"): fields.db = stringContents(value, bytes)
        case 3 where matches("lsn"): fields.lsn = stringContents(value, bytes)
        case 3 where matches("xid"): fields.xid = value
        case 5 where matches("table"): fields.table = stringContents(value, bytes)
        case 5 where matches("chunk"): fields.chunk = stringContents(value, bytes)
        case 6 where matches("schema"): fields.schema = stringContents(value, bytes)
        case 7 where matches("channel"): fields.channel = stringContents(value, bytes)
        case 7 where matches("capture"): fields.capture = stringContents(value, bytes)
        case 10 where matches("commit_lsn"): fields.commitLSN = stringContents(value, bytes)
        case 11 where matches("commit_time"): fields.commitTime = stringContents(value, bytes)
        default: break
        }
    }

    @inline(__always)
    private static func stringContents(_ value: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        guard value.count >= 2, bytes[value.lowerBound] == 0x22, bytes[value.upperBound - 1] == 0x22 else { return nil }
        return (value.lowerBound + 1)..<(value.upperBound - 1)
    }

    /// The operation, from the `op` text.
    public func operation(in bytes: UnsafeBufferPointer<UInt8>) -> ChangeOperation? {
        guard let op, !op.isEmpty else { return nil }
        switch bytes[op.lowerBound] {
        case UInt8(ascii: "i"): return .insert
        case UInt8(ascii: "u"): return .update
        case UInt8(ascii: "d"): return .delete
        case UInt8(ascii: "t"): return .truncate
        case UInt8(ascii: "r"): return .read
        case UInt8(ascii: "m"): return .message
        case UInt8(ascii: "c"): return .chunkDropped
        default: return nil
        }
    }

    /// The row an event is about: `after`, or `before` when there is no `after` (deletes).
    public func row(in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        let scanner = JSONScanner(bytes)
        if let after, !scanner.isNull(after) { return after }
        if let before, !scanner.isNull(before) { return before }
        return nil
    }
}
