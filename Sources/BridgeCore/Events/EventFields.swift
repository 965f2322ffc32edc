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
        var fields = EventFields(event: event)
        let scanner = JSONScanner(bytes)
        let start = scanner.skipWhitespace(event.lowerBound)
        scanner.forEachMember(of: start..<event.upperBound) { key, value in
            switch bytes[key.lowerBound] {
            case UInt8(ascii: "i") where key.count == 2:
                fields.id = stringContents(value, bytes)
            case UInt8(ascii: "o") where key.count == 2:
                fields.op = stringContents(value, bytes)
            case UInt8(ascii: "s") where key.count == 6:
                fields.source = value
                scanSource(value, scanner, into: &fields)
            case UInt8(ascii: "k") where key.count == 3:
                fields.key = value
            case UInt8(ascii: "b") where key.count == 6:
                fields.before = value
            case UInt8(ascii: "a") where key.count == 5:
                fields.after = value
            default:
                break
            }
            return true
        }
        return fields
    }

    private static func scanSource(_ source: Range<Int>, _ scanner: JSONScanner, into fields: inout EventFields) {
        let bytes = scanner.bytes
        scanner.forEachMember(of: source) { key, value in
            let name = bytes[key]
            func matches(_ literal: StaticString) -> Bool {
                name.count == literal.utf8CodeUnitCount
                    && name.elementsEqual(
                        UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
            }
            if matches("db") {
                fields.db = stringContents(value, bytes)
            } else if matches("schema") {
                fields.schema = stringContents(value, bytes)
            } else if matches("table") {
                fields.table = stringContents(value, bytes)
            } else if matches("chunk") {
                fields.chunk = stringContents(value, bytes)
            } else if matches("channel") {
                fields.channel = stringContents(value, bytes)
            } else if matches("lsn") {
                fields.lsn = stringContents(value, bytes)
            } else if matches("commit_lsn") {
                fields.commitLSN = stringContents(value, bytes)
            } else if matches("commit_time") {
                fields.commitTime = stringContents(value, bytes)
            } else if matches("capture") {
                fields.capture = stringContents(value, bytes)
            } else if matches("xid") {
                fields.xid = value
            }
            return true
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
