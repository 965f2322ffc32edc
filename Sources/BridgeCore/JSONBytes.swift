/// Hand-written JSON output into a byte array: the hot path of every encoder.
///
/// Strings are always valid JSON and valid UTF-8: control characters are escaped and invalid
/// UTF-8 sequences (possible in SQL_ASCII databases) are replaced by U+FFFD.
public enum JSONBytes {
    @usableFromInline
    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `"…"` with the escaped bytes of `src`.
    public static func appendString(_ src: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        appendEscaped(src, into: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// Appends `"…"` for a Swift string.
    public static func appendString(_ string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        appendEscaped(string, into: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// Appends the escaped content of a Swift string without quotes.
    public static func appendEscaped(_ string: String, into out: inout [UInt8]) {
        var s = string
        s.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0), into: &out) }
    }

    /// Appends the escaped content of `src` without quotes.
    public static func appendEscaped(_ src: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        appendSanitized(src, into: &out, insideString: true)
    }

    /// Copies `src`, replacing invalid UTF-8 with U+FFFD and, inside a JSON string, escaping
    /// quotes, backslashes and control characters; outside one (raw JSON documents), turning
    /// line breaks into spaces. Runs of plain bytes are copied in bulk.
    @inline(__always)
    private static func appendSanitized(_ src: UnsafeRawBufferPointer, into out: inout [UInt8], insideString: Bool) {
        let count = src.count
        guard count > 0, let base = src.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var i = 0
        var runStart = 0
        while i < count {
            let b = base[i]
            if b < 0x80 {
                let special = insideString ? (b < 0x20 || b == 0x22 || b == 0x5C) : (b == 0x0A || b == 0x0D)
                if !special {
                    i += 1
                    continue
                }
            } else {
                let length = validUTF8Length(base, i, count)
                if length > 0 {
                    i += length
                    continue
                }
            }
            if runStart < i {
                out.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: i - runStart))
            }
            if b >= 0x80 {
                out.append(contentsOf: [0xEF, 0xBF, 0xBD] as [UInt8])  // U+FFFD
            } else if insideString {
                appendEscape(b, into: &out)
            } else {
                out.append(0x20)
            }
            i += 1
            runStart = i
        }
        if runStart < count {
            out.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: count - runStart))
        }
    }

    @inline(__always)
    static func appendEscape(_ b: UInt8, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        switch b {
        case 0x22: out.append(0x22)
        case 0x5C: out.append(0x5C)
        case 0x0A: out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        case 0x08: out.append(UInt8(ascii: "b"))
        case 0x0C: out.append(UInt8(ascii: "f"))
        default:
            out.append(UInt8(ascii: "u"))
            out.append(UInt8(ascii: "0"))
            out.append(UInt8(ascii: "0"))
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0xF)])
        }
    }

    /// Length of the well-formed UTF-8 sequence starting at `i`, or 0 when it is ill-formed.
    @inline(__always)
    static func validUTF8Length(_ p: UnsafePointer<UInt8>, _ i: Int, _ count: Int) -> Int {
        let b0 = p[i]
        @inline(__always) func cont(_ k: Int) -> UInt8? {
            guard i + k < count else { return nil }
            let c = p[i + k]
            return c & 0xC0 == 0x80 ? c : nil
        }
        switch b0 {
        case 0xC2...0xDF:
            return cont(1) != nil ? 2 : 0
        case 0xE0...0xEF:
            guard let c1 = cont(1), cont(2) != nil else { return 0 }
            if b0 == 0xE0 && c1 < 0xA0 { return 0 }  // overlong
            if b0 == 0xED && c1 >= 0xA0 { return 0 }  // surrogates
            return 3
        case 0xF0...0xF4:
            guard let c1 = cont(1), cont(2) != nil, cont(3) != nil else { return 0 }
            if b0 == 0xF0 && c1 < 0x90 { return 0 }  // overlong
            if b0 == 0xF4 && c1 >= 0x90 { return 0 }  // above U+10FFFF
            return 4
        default:
            return 0
        }
    }

    /// Appends a JSON document produced by PostgreSQL (`json`, `jsonb`) as it is, except that
    /// line breaks become spaces (`json` keeps its input's whitespace, and a raw newline would
    /// split a JSON line; PostgreSQL only accepts them between tokens) and invalid UTF-8 becomes
    /// U+FFFD.
    public static func appendRawJSON(_ src: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        appendSanitized(src, into: &out, insideString: false)
    }

    /// Appends raw ASCII bytes (keys, numbers, literals) unchanged.
    @inline(__always)
    public static func appendRaw(_ literal: StaticString, into out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends a decimal integer.
    public static func appendInt(_ value: Int64, into out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            appendUInt(value == Int64.min ? UInt64(Int64.max) + 1 : UInt64(-value), into: &out)
        } else {
            appendUInt(UInt64(value), into: &out)
        }
    }

    public static func appendUInt(_ value: UInt64, into out: inout [UInt8]) {
        var digits = 1
        var t = value
        while t >= 10 {
            t /= 10
            digits += 1
        }
        let start = out.count
        out.append(contentsOf: repeatElement(UInt8(0), count: digits))
        var v = value
        var index = start + digits - 1
        while index >= start {
            out[index] = 48 + UInt8(v % 10)
            v /= 10
            index -= 1
        }
    }

    private static let base64Alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Appends the standard (padded) base64 form of `bytes`, without quotes.
    public static func appendBase64(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let alphabet = base64Alphabet
        var i = 0
        let n = bytes.count
        while i + 3 <= n {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(alphabet[Int(v & 63)])
            i += 3
        }
        let rest = n - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(contentsOf: [UInt8(ascii: "="), UInt8(ascii: "=")])
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(UInt8(ascii: "="))
        }
    }
}
