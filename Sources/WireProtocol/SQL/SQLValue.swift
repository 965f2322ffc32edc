import BridgeCore
import Foundation

/// A value the SQL subset computes with.
public indirect enum SQLValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    /// float8 and numeric.
    case double(Double)
    case text(String)
    case json(JSONValue)
    /// Microseconds since 1970-01-01 00:00 UTC.
    case timestamp(Int64)
    case lsn(UInt64)
    /// A Redis stream entry ID: shown as `ms-seq` text, ordered numerically as Redis orders them.
    case streamID(UInt64, UInt64)
    case array([SQLValue])

    public var isNull: Bool { self == .null }

    /// The value in PostgreSQL's text output format (DateStyle ISO, TimeZone UTC); nil for NULL.
    public var text: String? {
        switch self {
        case .null: return nil
        case .bool(let value): return value ? "t" : "f"
        case .int(let value): return String(value)
        case .double(let value): return Self.format(value)
        case .text(let value): return value
        case .json(let value): return value.text
        case .timestamp(let micros): return Self.formatTimestamp(micros)
        case .lsn(let value): return LSN(value).description
        case .streamID(let ms, let seq): return "\(ms)-\(seq)"
        case .array(let elements):
            return "{"
                + elements.map { element -> String in
                    guard let text = element.text else { return "NULL" }
                    let needsQuotes =
                        text.isEmpty || text.uppercased() == "NULL"
                        || text.contains { "{},\"\\ ".contains($0) }
                    guard needsQuotes else { return text }
                    return "\""
                        + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                        + "\""
                }.joined(separator: ",") + "}"
        }
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "Infinity" : "-Infinity" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// `2026-11-21 07:09:16.123456+00`.
    static func formatTimestamp(_ micros: Int64) -> String {
        if micros == Int64.max { return "infinity" }
        if micros == Int64.min { return "-infinity" }
        let parts = PostgresTime.components(unixMicros: micros)
        let (year, month, day, secondOfDay, fraction) = (
            parts.year, parts.month, parts.day, parts.secondOfDay, parts.micros
        )
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var out =
            "\(pad(year, 4))-\(pad(Int64(month), 2))-\(pad(Int64(day), 2)) "
            + "\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))"
        if fraction > 0 {
            var digits = pad(fraction, 6)
            while digits.hasSuffix("0") { digits.removeLast() }
            out += "." + digits
        }
        return out + "+00"
    }

    /// Parses `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][Z|±HH[:MM]]` (a date alone is midnight);
    /// without a zone the time is UTC (the session's time zone).
    static func parseTimestamp(_ raw: String) -> Int64? {
        let text = raw.trimmingCharacters(in: .whitespaces)
        let lowered = text.lowercased()
        if lowered == "infinity" { return Int64.max }
        if lowered == "-infinity" { return Int64.min }
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ maxDigits: Int) -> Int64? {
            var value: Int64 = 0
            var count = 0
            while index < bytes.count, count < maxDigits, (48...57).contains(bytes[index]) {
                value = value * 10 + Int64(bytes[index] - 48)
                index += 1
                count += 1
            }
            return count > 0 ? value : nil
        }
        func expect(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }
        guard let year = number(6), expect(UInt8(ascii: "-")), let month = number(2), (1...12).contains(month),
            expect(UInt8(ascii: "-")), let day = number(2), (1...31).contains(day)
        else { return nil }
        var seconds = Int64(PostgresTime.daysFromCivil(Int(year), Int(month), Int(day))) * 86_400
        var micros: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "T") {
            index += 1
            guard let hour = number(2), hour < 25, expect(UInt8(ascii: ":")), let minute = number(2), minute < 60
            else { return nil }
            seconds += hour * 3600 + minute * 60
            if expect(UInt8(ascii: ":")) {
                guard let second = number(2), second < 61 else { return nil }
                seconds += second
                if expect(UInt8(ascii: ".")) {
                    var scale: Int64 = 100_000
                    var digits = 0
                    while index < bytes.count, (48...57).contains(bytes[index]) {
                        micros += Int64(bytes[index] - 48) * scale
                        scale /= 10
                        index += 1
                        digits += 1
                    }
                    guard digits > 0 else { return nil }
                }
            }
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
            if index < bytes.count {
                if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    let sign: Int64 = bytes[index] == UInt8(ascii: "+") ? 1 : -1
                    index += 1
                    guard let hours = number(2) else { return nil }
                    var offset = hours * 3600
                    _ = expect(UInt8(ascii: ":"))
                    if let minutes = number(2) {
                        offset += minutes * 60
                        _ = expect(UInt8(ascii: ":"))
                        if let extra = number(2) { offset += extra }
                    }
                    seconds -= sign * offset
                } else if text[text.index(text.startIndex, offsetBy: index)...].uppercased() == "UTC" {
                    index = bytes.count
                }
            }
        }
        guard index == bytes.count else { return nil }
        // Beyond ±292,000 years: not representable (PostgreSQL's own limit is lower still).
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        guard !overflow, scaled < Int64.max - micros, scaled > Int64.min else { return nil }
        return scaled + micros
    }

    static func parseStreamID(_ text: String) -> (UInt64, UInt64)? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard let ms = UInt64(parts[0]) else { return nil }
        if parts.count == 1 { return (ms, 0) }
        guard parts.count == 2, let seq = UInt64(parts[1]) else { return nil }
        return (ms, seq)
    }
}

// MARK: - Input and casts

extension SQLValue {
    /// A value of `type` from its text form (a literal or a text-format parameter).
    public static func parse(_ text: String, as type: SQLType) throws(WireError) -> SQLValue {
        func invalid() -> WireError {
            WireError("22P02", "invalid input syntax for type \(type): \"\(text.prefix(200))\"")
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch type {
        case .text, .name, .char, .unknown, .regclass:
            return .text(text)
        case .bool:
            switch trimmed.lowercased() {
            case "t", "true", "yes", "y", "on", "1": return .bool(true)
            case "f", "false", "no", "n", "off", "0": return .bool(false)
            default: throw invalid()
            }
        case .int2, .int4, .int8, .oid:
            guard let value = Int64(trimmed) else { throw invalid() }
            if type == .int4, Int32(exactly: value) == nil {
                throw WireError("22003", "value \"\(trimmed)\" is out of range for type integer")
            }
            return .int(value)
        case .float8, .numeric:
            switch trimmed.lowercased() {
            case "nan": return .double(.nan)
            case "infinity", "inf": return .double(.infinity)
            case "-infinity", "-inf": return .double(-.infinity)
            default:
                guard let value = Double(trimmed) else { throw invalid() }
                return .double(value)
            }
        case .json, .jsonb:
            guard let value = JSONValue(parsing: text) else {
                throw WireError("22P02", "invalid input syntax for type json", detail: "\(text.prefix(200))")
            }
            return .json(value)
        case .timestamptz:
            guard let micros = parseTimestamp(trimmed) else { throw invalid() }
            return .timestamp(micros)
        case .pgLSN:
            guard let lsn = LSN(trimmed) else { throw invalid() }
            return .lsn(lsn.value)
        case .array(let element):
            return .array(try parseArray(trimmed, element: element))
        }
    }

    /// A one-dimensional array literal `{a,"b c",NULL}`.
    static func parseArray(_ text: String, element: SQLType) throws(WireError) -> [SQLValue] {
        let scalars = Array(text.unicodeScalars)
        guard scalars.first == "{", scalars.last == "}" else {
            throw WireError("22P02", "malformed array literal: \"\(text.prefix(200))\"")
        }
        var values: [SQLValue] = []
        var index = 1
        let end = scalars.count - 1
        if end == 1 { return [] }
        while index <= end {
            var item = ""
            var quoted = false
            while index < end, scalars[index] == " " { index += 1 }
            if index < end, scalars[index] == "\"" {
                quoted = true
                index += 1
                while index < end, scalars[index] != "\"" {
                    if scalars[index] == "\\", index + 1 < end { index += 1 }
                    item.unicodeScalars.append(scalars[index])
                    index += 1
                }
                index += 1
            } else {
                while index < end, scalars[index] != "," {
                    item.unicodeScalars.append(scalars[index])
                    index += 1
                }
                item = item.trimmingCharacters(in: .whitespaces)
            }
            guard index == end || scalars[index] == "," else {
                throw WireError("22P02", "malformed array literal: \"\(text.prefix(200))\"")
            }
            index += 1
            if !quoted, item.uppercased() == "NULL" {
                values.append(.null)
            } else {
                values.append(try parse(item, as: element))
            }
        }
        return values
    }

    /// `value::type`.
    public func cast(to type: SQLType) throws(WireError) -> SQLValue {
        switch (self, type) {
        case (.null, _): return .null
        case (.int, .int2), (.int, .int4), (.int, .int8), (.int, .oid):
            return self
        case (.int(let value), .float8), (.int(let value), .numeric): return .double(Double(value))
        case (.double(let value), .int2), (.double(let value), .int4), (.double(let value), .int8):
            guard value.isFinite, let rounded = Int64(exactly: value.rounded()) else {
                throw WireError("22003", "value out of range for type \(type)")
            }
            return .int(rounded)
        case (.double, .float8), (.double, .numeric): return self
        case (.json(let value), .json), (.json(let value), .jsonb): return .json(value)
        case (.timestamp, .timestamptz), (.lsn, .pgLSN), (.bool, .bool), (.array, .array): return self
        case (.streamID, .text), (.streamID, .name): return self
        case (_, .text), (_, .name), (_, .char), (_, .unknown):
            return .text(text ?? "")
        case (.text(let text), _):
            return try SQLValue.parse(text, as: type)
        case (.json(let value), _):
            return try SQLValue.parse(value.unquotedText ?? "", as: type)
        default:
            guard let text else { return .null }
            return try SQLValue.parse(text, as: type)
        }
    }
}

// MARK: - Comparison

extension SQLValue {
    /// Orders two non-null values; throws when they cannot be compared.
    public static func compare(_ lhs: SQLValue, _ rhs: SQLValue) throws(WireError) -> Int {
        func order<T: Comparable>(_ a: T, _ b: T) -> Int { a < b ? -1 : (a > b ? 1 : 0) }
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)): return order(a, b)
        case (.int(let a), .double(let b)): return order(Double(a), b)
        case (.double(let a), .int(let b)): return order(a, Double(b))
        case (.double(let a), .double(let b)): return order(a, b)
        case (.text(let a), .text(let b)): return a == b ? 0 : (a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1)
        case (.bool(let a), .bool(let b)): return order(a ? 1 : 0, b ? 1 : 0)
        case (.timestamp(let a), .timestamp(let b)): return order(a, b)
        case (.lsn(let a), .lsn(let b)): return order(a, b)
        case (.streamID(let a1, let a2), .streamID(let b1, let b2)): return a1 != b1 ? order(a1, b1) : order(a2, b2)
        case (.streamID, .text(let text)):
            guard let id = parseStreamID(text) else { throw WireError("22P02", "invalid stream ID \"\(text)\"") }
            return try compare(lhs, .streamID(id.0, id.1))
        case (.text, .streamID): return -(try compare(rhs, lhs))
        case (.json(let a), .json(let b)):
            if a == b { return 0 }
            return order(a.text, b.text)
        case (.text(let text), _): return try compare(try SQLValue.parse(text, as: rhs.type), rhs)
        case (_, .text(let text)): return try compare(lhs, try SQLValue.parse(text, as: lhs.type))
        default:
            throw WireError("42883", "cannot compare \(lhs.type) with \(rhs.type)")
        }
    }

    /// The type a value has (for messages and implicit conversions).
    var type: SQLType {
        switch self {
        case .null: .unknown
        case .bool: .bool
        case .int: .int8
        case .double: .numeric
        case .text: .text
        case .json: .jsonb
        case .timestamp: .timestamptz
        case .lsn: .pgLSN
        case .streamID: .text
        case .array(let elements): .array(elements.first { !$0.isNull }?.type ?? .text)
        }
    }
}
