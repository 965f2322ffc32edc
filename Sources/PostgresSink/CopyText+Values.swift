import BridgeCore

/// JSON values of an event written as `COPY` text for a column of the target, so that the
/// server converts typed text (no JSON parsing on the target): strings unescaped, JSON kept
/// for json/jsonb, arrays as array literals, bytea from base64 to `\x…`.
extension CopyText {
    /// Field `value` (a JSON value in `bytes`; nil or `null` = NULL) for a column of `kind`.
    mutating func value(
        _ bytes: UnsafeBufferPointer<UInt8>, _ value: Range<Int>?, kind: TargetTable.Column.Kind, first: Bool = false
    ) {
        if !first { self.bytes.append(0x09) }
        guard let value, !value.isEmpty, bytes[value.lowerBound] != UInt8(ascii: "n") else {
            self.bytes.append(contentsOf: [0x5C, 0x4E])
            return
        }
        switch (bytes[value.lowerBound], kind) {
        case (UInt8(ascii: "\""), .bytea):
            self.bytes.append(contentsOf: [0x5C, 0x5C, UInt8(ascii: "x")])
            Self.appendHex(base64: bytes, (value.lowerBound + 1)..<(value.upperBound - 1), into: &self.bytes)
        case (UInt8(ascii: "\""), .json):
            escaped(bytes, value)
        case (UInt8(ascii: "\""), _):
            unescapedString(bytes, (value.lowerBound + 1)..<(value.upperBound - 1))
        case (UInt8(ascii: "["), .array(let element)):
            var literal: [UInt8] = []
            Self.appendArrayLiteral(bytes, value, element: element, into: &literal)
            literal.withUnsafeBufferPointer { escaped($0, 0..<$0.count) }
        default:
            escaped(bytes, value)
        }
    }

    /// The bytes with COPY's escapes (backslash, tab, newline, carriage return).
    mutating func escaped(_ value: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        var runStart = range.lowerBound
        for i in range {
            let byte = value[i]
            guard byte == 0x5C || byte == 0x09 || byte == 0x0A || byte == 0x0D else { continue }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: value[runStart..<i]))
            switch byte {
            case 0x09: bytes.append(contentsOf: [0x5C, 0x74])
            case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])
            default: bytes.append(contentsOf: [0x5C, 0x5C])
            }
            runStart = i + 1
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: value[runStart..<range.upperBound]))
    }

    /// A JSON string's contents as COPY text: JSON's `\n \t \r \b \f \\` are COPY's escapes as
    /// well, `\"` and `\/` lose their backslash, `\uXXXX` becomes UTF-8.
    mutating func unescapedString(_ value: UnsafeBufferPointer<UInt8>, _ contents: Range<Int>) {
        var i = contents.lowerBound
        var runStart = i
        while i < contents.upperBound {
            let byte = value[i]
            if byte != 0x5C, byte != 0x09, byte != 0x0A, byte != 0x0D {
                i += 1
                continue
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: value[runStart..<i]))
            guard byte == 0x5C, i + 1 < contents.upperBound else {
                // A raw control character (not produced by pgbridge's encoder): escaped for COPY.
                escaped(value, i..<(i + 1))
                i += 1
                runStart = i
                continue
            }
            let escape = value[i + 1]
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "/"):
                bytes.append(escape)
                i += 2
            case UInt8(ascii: "u"):
                // One \uXXXX, or a surrogate pair of two.
                let pair =
                    contents.upperBound - i >= 12 && value[i + 6] == 0x5C && value[i + 7] == UInt8(ascii: "u")
                    && (0xD8...0xDB).contains(Self.hexByte(value, i + 2))
                let consumed = min(pair ? 12 : 6, contents.upperBound - i)
                var decoded: [UInt8] = []
                JSONScanner(value).appendUnescaped(i..<(i + consumed), into: &decoded)
                decoded.withUnsafeBufferPointer { escaped($0, 0..<$0.count) }
                i += consumed
            default:
                bytes.append(contentsOf: [0x5C, escape])
                i += 2
            }
            runStart = i
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: value[runStart..<contents.upperBound]))
    }

    static func hexByte(_ value: UnsafeBufferPointer<UInt8>, _ i: Int) -> UInt8 {
        func digit(_ b: UInt8) -> UInt8 {
            switch b {
            case 0x30...0x39: b - 0x30
            case 0x41...0x46: b - 0x37
            case 0x61...0x66: b - 0x57
            default: 0
            }
        }
        return digit(value[i]) << 4 | digit(value[i + 1])
    }

    /// `[1,null,"a"]` → `{1,NULL,"a"}` (nested arrays nested; objects as quoted JSON text).
    static func appendArrayLiteral(
        _ bytes: UnsafeBufferPointer<UInt8>, _ array: Range<Int>, element: TargetTable.Column.Kind.Element,
        into out: inout [UInt8]
    ) {
        let scanner = JSONScanner(bytes)
        out.append(UInt8(ascii: "{"))
        var i = scanner.skipWhitespace(array.lowerBound + 1)
        var first = true
        while i < array.upperBound, bytes[i] != UInt8(ascii: "]") {
            let end = scanner.valueEnd(i)
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            switch bytes[i] {
            case UInt8(ascii: "n"):
                out.append(contentsOf: Array("NULL".utf8))
            case UInt8(ascii: "[") where element == .json:
                // An element of a json[] that is itself a JSON array: one json value.
                out.append(UInt8(ascii: "\""))
                appendQuotedContents(Array(UnsafeBufferPointer(rebasing: bytes[i..<end])), into: &out)
                out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "["):
                appendArrayLiteral(bytes, i..<end, element: element, into: &out)
            case UInt8(ascii: "\""):
                out.append(UInt8(ascii: "\""))
                var text: [UInt8] = []
                if element == .bytea {
                    text.append(contentsOf: [0x5C, UInt8(ascii: "x")])
                    appendHex(base64: bytes, (i + 1)..<(end - 1), into: &text)
                } else if element == .json {
                    text.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i..<end]))
                } else {
                    scanner.appendUnescaped((i + 1)..<(end - 1), into: &text)
                }
                appendQuotedContents(text, into: &out)
                out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "{"):
                out.append(UInt8(ascii: "\""))
                appendQuotedContents(Array(UnsafeBufferPointer(rebasing: bytes[i..<end])), into: &out)
                out.append(UInt8(ascii: "\""))
            default:
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i..<end]))
            }
            i = scanner.skipWhitespace(end)
            if i < array.upperBound, bytes[i] == UInt8(ascii: ",") { i = scanner.skipWhitespace(i + 1) }
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Inside a quoted array element, backslash and double quote take a backslash.
    static func appendQuotedContents(_ text: [UInt8], into out: inout [UInt8]) {
        for byte in text {
            if byte == 0x5C || byte == 0x22 { out.append(0x5C) }
            out.append(byte)
        }
    }

    /// Decodes standard base64 (with or without padding) and appends lower-case hex.
    static func appendHex(base64 bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        var accumulator: UInt32 = 0
        var bits = 0
        for i in range {
            let c = bytes[i]
            let sextet: UInt32
            switch c {
            case 0x41...0x5A: sextet = UInt32(c - 0x41)
            case 0x61...0x7A: sextet = UInt32(c - 0x61 + 26)
            case 0x30...0x39: sextet = UInt32(c - 0x30 + 52)
            case UInt8(ascii: "+"): sextet = 62
            case UInt8(ascii: "/"): sextet = 63
            default: continue  // padding, or an escaped "\/" (its backslash)
            }
            accumulator = accumulator << 6 | sextet
            bits += 6
            if bits >= 8 {
                bits -= 8
                let byte = UInt8((accumulator >> UInt32(bits)) & 0xFF)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
    }
}
