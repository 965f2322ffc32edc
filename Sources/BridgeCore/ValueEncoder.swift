/// Writes one PostgreSQL value, given in its text output form, as JSON.
///
/// The replication connection sets `DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=postgres`
/// and `extra_float_digits=3`, so text forms are stable. Anything unexpected degrades to a JSON
/// string of the raw text: the output is valid JSON for every input.
public enum ValueEncoder {
    public static func append(
        text: UnsafeRawBufferPointer, mapping: PostgresType.Mapping, into out: inout [UInt8]
    ) {
        switch mapping {
        case .boolean:
            if text.count == 1 && text[0] == UInt8(ascii: "t") {
                JSONBytes.appendRaw("true", into: &out)
            } else if text.count == 1 && text[0] == UInt8(ascii: "f") {
                JSONBytes.appendRaw("false", into: &out)
            } else {
                JSONBytes.appendString(text, into: &out)
            }
        case .integer:
            if isJSONInteger(text) {
                out.append(contentsOf: text)
            } else {
                JSONBytes.appendString(text, into: &out)
            }
        case .float:
            if isJSONNumber(text) {
                out.append(contentsOf: text)
            } else {
                JSONBytes.appendString(text, into: &out)  // NaN, Infinity, -Infinity
            }
        case .rawJSON:
            if text.count > 0 {
                JSONBytes.appendRawJSON(text, into: &out)
            } else {
                JSONBytes.appendRaw("null", into: &out)
            }
        case .byteaBase64:
            appendBytea(text, into: &out)
        case .timestamptz:
            appendTimestamp(text, withZone: true, into: &out)
        case .timestamp:
            appendTimestamp(text, withZone: false, into: &out)
        case .string:
            JSONBytes.appendString(text, into: &out)
        case .array(let element):
            var parser = ArrayLiteralParser(text: text, element: element)
            if !parser.appendJSON(into: &out) {
                JSONBytes.appendString(text, into: &out)
            }
        }
    }

    /// A value given in binary form (`'b'` tuple kind): written as a base64 string.
    public static func append(binary: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        JSONBytes.appendBase64(binary, into: &out)
        out.append(UInt8(ascii: "\""))
    }

    static func isJSONInteger(_ t: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        if i < t.count && t[i] == UInt8(ascii: "-") { i += 1 }
        guard i < t.count else { return false }
        if t[i] == UInt8(ascii: "0") && t.count > i + 1 { return false }
        while i < t.count {
            guard t[i] >= 48 && t[i] <= 57 else { return false }
            i += 1
        }
        return true
    }

    /// JSON number grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
    static func isJSONNumber(_ t: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = t.count
        @inline(__always) func digit(_ k: Int) -> Bool { k < n && t[k] >= 48 && t[k] <= 57 }
        if i < n && t[i] == UInt8(ascii: "-") { i += 1 }
        guard digit(i) else { return false }
        if t[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while digit(i) { i += 1 }
        }
        if i < n && t[i] == UInt8(ascii: ".") {
            i += 1
            guard digit(i) else { return false }
            while digit(i) { i += 1 }
        }
        if i < n && (t[i] == UInt8(ascii: "e") || t[i] == UInt8(ascii: "E")) {
            i += 1
            if i < n && (t[i] == UInt8(ascii: "+") || t[i] == UInt8(ascii: "-")) { i += 1 }
            guard digit(i) else { return false }
            while digit(i) { i += 1 }
        }
        return i == n
    }

    /// bytea text form `\x0a0b…` → base64; the legacy escape form falls back to a string.
    static func appendBytea(_ t: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard t.count >= 2, t[0] == UInt8(ascii: "\\"), t[1] == UInt8(ascii: "x"), t.count % 2 == 0 else {
            JSONBytes.appendString(t, into: &out)
            return
        }
        let byteCount = (t.count - 2) / 2
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(byteCount, 1)) { buffer in
            for k in 0..<byteCount {
                guard let hi = hexValue(t[2 + 2 * k]), let lo = hexValue(t[3 + 2 * k]) else {
                    JSONBytes.appendString(t, into: &out)
                    return
                }
                buffer[k] = hi << 4 | lo
            }
            out.append(UInt8(ascii: "\""))
            JSONBytes.appendBase64(
                UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<byteCount]), into: &out)
            out.append(UInt8(ascii: "\""))
        }
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }

    /// `2026-11-20 10:00:00.1234+00` → `"2026-11-20T10:00:00.123400Z"` (timestamptz, always six
    /// fraction digits) or `2026-11-20 10:00:00.1234` → `"2026-11-20T10:00:00.1234"` (timestamp).
    /// `infinity`, BC dates and years past 9999 stay in their PostgreSQL text form.
    static func appendTimestamp(_ t: UnsafeRawBufferPointer, withZone: Bool, into out: inout [UInt8]) {
        let n = t.count
        guard n >= 19, t[10] == UInt8(ascii: " "), t[4] == UInt8(ascii: "-"), t[13] == UInt8(ascii: ":") else {
            JSONBytes.appendString(t, into: &out)
            return
        }
        // End of the seconds fraction.
        var i = 19
        var fractionDigits = 0
        if i < n && t[i] == UInt8(ascii: ".") {
            i += 1
            while i < n && t[i] >= 48 && t[i] <= 57 {
                i += 1
                fractionDigits += 1
            }
        }
        let zoneStart = i
        if !withZone {
            guard zoneStart == n else {
                JSONBytes.appendString(t, into: &out)  // "… BC"
                return
            }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: t[0..<10]))
            out.append(UInt8(ascii: "T"))
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: t[11..<n]))
            out.append(UInt8(ascii: "\""))
            return
        }
        // Zone: +HH, +HH:MM or +HH:MM:SS.
        let zone = UnsafeRawBufferPointer(rebasing: t[zoneStart..<n])
        guard zone.count == 3 || zone.count == 6 || zone.count == 9,
            zone[0] == UInt8(ascii: "+") || zone[0] == UInt8(ascii: "-"),
            zone.dropFirst().allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: ":") }),
            fractionDigits <= 6
        else {
            JSONBytes.appendString(t, into: &out)
            return
        }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: t[0..<10]))
        out.append(UInt8(ascii: "T"))
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: t[11..<19]))
        out.append(UInt8(ascii: "."))
        if fractionDigits > 0 {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: t[20..<(20 + fractionDigits)]))
        }
        for _ in fractionDigits..<6 { out.append(UInt8(ascii: "0")) }
        let isUTC = zone.allSatisfy { $0 == UInt8(ascii: "0") || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "+") }
        if isUTC {
            out.append(UInt8(ascii: "Z"))
        } else {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: zone[0..<3]))
            out.append(UInt8(ascii: ":"))
            if zone.count >= 6 {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: zone[4..<6]))
            } else {
                out.append(contentsOf: [48, 48] as [UInt8])
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
