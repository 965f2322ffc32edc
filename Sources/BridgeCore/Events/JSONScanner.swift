/// Finds values in JSON text without building objects: ranges into the caller's bytes.
///
/// The input is trusted to be valid JSON (events are written by pgbridge's own encoders); on
/// malformed input the scanner stops at the end of the buffer instead of trapping.
public struct JSONScanner {
    public let bytes: UnsafeBufferPointer<UInt8>

    public init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    @inline(__always)
    public func skipWhitespace(_ i: Int) -> Int {
        var i = i
        while i < bytes.count {
            let b = bytes[i]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { break }
            i += 1
        }
        return i
    }

    /// `i` is at an opening quote; returns the index just past the closing quote.
    @inline(__always)
    public func stringEnd(_ i: Int) -> Int {
        var i = i + 1
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x22 { return i + 1 }
            i += b == 0x5C ? 2 : 1
        }
        return bytes.count
    }

    /// `i` is at the first byte of a value; returns the index just past it.
    public func valueEnd(_ i: Int) -> Int {
        guard i < bytes.count else { return bytes.count }
        switch bytes[i] {
        case 0x22:
            return stringEnd(i)
        case 0x7B, 0x5B:
            var depth = 0
            var j = i
            while j < bytes.count {
                let b = bytes[j]
                if b == 0x22 {
                    j = stringEnd(j)
                    continue
                }
                if b == 0x7B || b == 0x5B {
                    depth += 1
                } else if b == 0x7D || b == 0x5D {
                    depth -= 1
                    if depth == 0 { return j + 1 }
                }
                j += 1
            }
            return bytes.count
        default:
            var j = i
            while j < bytes.count {
                let b = bytes[j]
                if b == 0x2C || b == 0x7D || b == 0x5D || b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { break }
                j += 1
            }
            return j
        }
    }

    /// Calls `body` with the key (contents, without quotes) and the value range of each member
    /// of the object at `object`; `body` returns false to stop.
    public func forEachMember(of object: Range<Int>, _ body: (Range<Int>, Range<Int>) -> Bool) {
        _ = forEachMemberStart(of: object) { key, start in
            let end = valueEnd(start)
            guard start < end, end <= object.upperBound, body(key, start..<end) else { return nil }
            return end
        }
    }

    /// Calls `body` with each member of the object at `object`, and returns the index just past
    /// its closing brace (nil when malformed or stopped): one pass reads the members and finds
    /// where the object ends.
    public func visitMembers(of object: Range<Int>, _ body: (Range<Int>, Range<Int>) -> Void) -> Int? {
        forEachMemberStart(of: object) { key, start in
            let end = valueEnd(start)
            guard start < end, end <= object.upperBound else { return nil }
            body(key, start..<end)
            return end
        }
    }

    /// The members of the object starting at `object.lowerBound`: `body` gets each key's contents
    /// and where its value starts, and returns where the value ends (nil to stop). Returns the
    /// index just past the closing brace, or nil when stopped or malformed.
    @inline(__always)
    public func forEachMemberStart(of object: Range<Int>, _ body: (Range<Int>, Int) -> Int?) -> Int? {
        guard !object.isEmpty, bytes[object.lowerBound] == 0x7B else { return nil }
        var i = skipWhitespace(object.lowerBound + 1)
        while i < object.upperBound, bytes[i] == 0x22 {
            let keyEnd = stringEnd(i)
            guard keyEnd <= object.upperBound, keyEnd - i >= 2, bytes[keyEnd - 1] == 0x22 else { return nil }
            let key = (i + 1)..<(keyEnd - 1)
            i = skipWhitespace(keyEnd)
            guard i < object.upperBound, bytes[i] == 0x3A else { return nil }
            guard let valueEnd = body(key, skipWhitespace(i + 1)) else { return nil }
            i = skipWhitespace(valueEnd)
            guard i < object.upperBound else { return nil }
            if bytes[i] == 0x7D { return i + 1 }
            guard bytes[i] == 0x2C else { return nil }
            i = skipWhitespace(i + 1)
        }
        return i < object.upperBound && bytes[i] == 0x7D ? i + 1 : nil
    }

    /// The value of member `name` (unescaped UTF-8) of the object at `object`.
    public func member(_ name: some Collection<UInt8>, of object: Range<Int>) -> Range<Int>? {
        var found: Range<Int>?
        forEachMember(of: object) { key, value in
            if keyEquals(key, name) {
                found = value
                return false
            }
            return true
        }
        return found
    }

    /// Compares a key's escaped contents with an unescaped name.
    public func keyEquals(_ key: Range<Int>, _ name: some Collection<UInt8>) -> Bool {
        if key.count == name.count, !bytes[key].contains(0x5C) {
            return bytes[key].elementsEqual(name)
        }
        guard bytes[key].contains(0x5C) else { return false }
        var unescaped: [UInt8] = []
        appendUnescaped(key, into: &unescaped)
        return unescaped.elementsEqual(name)
    }

    /// Whether the value at `range` is the literal `null` (or absent).
    public func isNull(_ range: Range<Int>?) -> Bool {
        guard let range, !range.isEmpty else { return true }
        return bytes[range.lowerBound] == 0x6E
    }

    /// The value as text: a string's unescaped contents, any other value's JSON as is.
    public func appendText(_ value: Range<Int>, into out: inout [UInt8]) {
        guard !value.isEmpty else { return }
        if bytes[value.lowerBound] == 0x22 {
            appendUnescaped((value.lowerBound + 1)..<(value.upperBound - 1), into: &out)
        } else {
            out.append(contentsOf: bytes[value])
        }
    }

    /// Unescapes the contents of a JSON string (without its quotes).
    public func appendUnescaped(_ contents: Range<Int>, into out: inout [UInt8]) {
        var i = contents.lowerBound
        var runStart = i
        while i < contents.upperBound {
            guard bytes[i] == 0x5C else {
                i += 1
                continue
            }
            out.append(contentsOf: bytes[runStart..<i])
            guard i + 1 < contents.upperBound else { return }
            let escape = bytes[i + 1]
            i += 2
            switch escape {
            case 0x6E: out.append(0x0A)
            case 0x74: out.append(0x09)
            case 0x72: out.append(0x0D)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x75:
                guard i + 4 <= contents.upperBound, var scalar = hex4(at: i) else { return }
                i += 4
                if (0xD800..<0xDC00).contains(scalar), i + 6 <= contents.upperBound, bytes[i] == 0x5C,
                    bytes[i + 1] == 0x75, let low = hex4(at: i + 2), (0xDC00..<0xE000).contains(low)
                {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                appendUTF8(Unicode.Scalar(scalar) ?? "\u{FFFD}", into: &out)
            default: out.append(escape)
            }
            runStart = i
        }
        out.append(contentsOf: bytes[runStart..<contents.upperBound])
    }

    private func hex4(at i: Int) -> UInt32? {
        var value: UInt32 = 0
        for k in 0..<4 {
            let b = bytes[i + k]
            let digit: UInt32
            switch b {
            case 0x30...0x39: digit = UInt32(b - 0x30)
            case 0x41...0x46: digit = UInt32(b - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(b - 0x61 + 10)
            default: return nil
            }
            value = value << 4 | digit
        }
        return value
    }

    private func appendUTF8(_ scalar: Unicode.Scalar, into out: inout [UInt8]) {
        out.append(contentsOf: UTF8.encode(scalar)!)
    }
}
