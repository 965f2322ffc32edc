/// Checks that bytes are one JSON text (RFC 8259) in valid UTF-8, without building values: what
/// a message source runs on each payload before pgbridge's own scanners, which trust their
/// input, read it.
public struct JSONValidator {
    /// The JSON value kinds, as far as a caller needs to tell them apart.
    public enum Kind: Sendable, Equatable {
        case object, array, string, number, literal
    }

    /// Where and why the bytes are not JSON.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var offset: Int
        public var problem: String
        public var description: String { "not valid JSON at byte \(offset): \(problem)" }
    }

    /// Nesting deeper than this is refused (a bounded stack for any input).
    public static let maxDepth = 512

    let bytes: UnsafeRawBufferPointer
    var index = 0
    /// Whether a line break (LF or CR) was met between tokens.
    var sawLineBreak = false

    /// The kind of the one value `bytes` holds (surrounding whitespace allowed).
    public static func validate(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> Kind {
        var lineBreaks = false
        return try validate(bytes, lineBreaks: &lineBreaks)
    }

    /// The same, and whether the text has line breaks between its tokens (without them it can
    /// be copied as it is into a JSON line).
    public static func validate(_ bytes: UnsafeRawBufferPointer, lineBreaks: inout Bool) throws(Failure) -> Kind {
        var validator = JSONValidator(bytes: bytes)
        validator.skipWhitespace()
        let kind = try validator.value(depth: 0)
        validator.skipWhitespace()
        guard validator.index == bytes.count else { throw validator.failure("unexpected bytes after the value") }
        lineBreaks = validator.sawLineBreak
        return kind
    }

    func failure(_ problem: String) -> Failure { Failure(offset: index, problem: problem) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09: index += 1
            case 0x0A, 0x0D:
                sawLineBreak = true
                index += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int) throws(Failure) -> Kind {
        guard index < bytes.count else { throw failure("the text ends where a value should be") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            try object(depth: depth + 1)
            return .object
        case UInt8(ascii: "["):
            try array(depth: depth + 1)
            return .array
        case UInt8(ascii: "\""):
            try string()
            return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try number()
            return .number
        case UInt8(ascii: "t"):
            try literal("true")
        case UInt8(ascii: "f"):
            try literal("false")
        case UInt8(ascii: "n"):
            try literal("null")
        default:
            throw failure("unexpected character")
        }
        return .literal
    }

    mutating func object(depth: Int) throws(Failure) {
        guard depth <= Self.maxDepth else { throw failure("nested deeper than \(Self.maxDepth) levels") }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw failure("expected a member name in double quotes")
            }
            try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("expected ':'") }
            index += 1
            skipWhitespace()
            _ = try value(depth: depth)
            skipWhitespace()
            guard index < bytes.count else { throw failure("the object is not closed") }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return
            }
            guard bytes[index] == UInt8(ascii: ",") else { throw failure("expected ',' or '}'") }
            index += 1
            skipWhitespace()
        }
    }

    mutating func array(depth: Int) throws(Failure) {
        guard depth <= Self.maxDepth else { throw failure("nested deeper than \(Self.maxDepth) levels") }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            _ = try value(depth: depth)
            skipWhitespace()
            guard index < bytes.count else { throw failure("the array is not closed") }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return
            }
            guard bytes[index] == UInt8(ascii: ",") else { throw failure("expected ',' or ']'") }
            index += 1
            skipWhitespace()
        }
    }

    mutating func string() throws(Failure) {
        index += 1
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return
            case UInt8(ascii: "\\"):
                guard index + 1 < bytes.count else { throw failure("the string is not closed") }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard index + 6 <= bytes.count, (2..<6).allSatisfy({ Self.isHex(bytes[index + $0]) }) else {
                        throw failure("a \\u escape needs four hex digits")
                    }
                    index += 6
                default:
                    throw failure("unknown escape")
                }
            case 0x00..<0x20:
                throw failure("a control character in a string must be escaped")
            case 0x20..<0x80:
                index += 1
            default:
                try utf8Sequence()
            }
        }
        throw failure("the string is not closed")
    }

    /// One multi-byte UTF-8 sequence (no overlong forms, surrogates or values past U+10FFFF).
    mutating func utf8Sequence() throws(Failure) {
        let lead = bytes[index]
        let count: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: count = 2
        case 0xE0:
            count = 3
            low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: count = 3
        case 0xED:
            count = 3
            high = 0x9F
        case 0xF0:
            count = 4
            low = 0x90
        case 0xF1...0xF3: count = 4
        case 0xF4:
            count = 4
            high = 0x8F
        default: throw failure("not UTF-8")
        }
        guard index + count <= bytes.count else { throw failure("not UTF-8 (a sequence is cut short)") }
        guard (low...high).contains(bytes[index + 1]) else { throw failure("not UTF-8") }
        for offset in 2..<count where !(0x80...0xBF).contains(bytes[index + offset]) {
            throw failure("not UTF-8")
        }
        index += count
    }

    mutating func number() throws(Failure) {
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, Self.isDigit(bytes[index]) else { throw failure("a number needs digits") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw failure("a fraction needs digits") }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw failure("an exponent needs digits") }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
    }

    mutating func literal(_ word: StaticString) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count,
            (0..<count).allSatisfy({ bytes[index + $0] == word.utf8Start[$0] })
        else { throw failure("unexpected character") }
        index += count
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    static func isHex(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
    }

    /// Whether `bytes` are valid UTF-8 (for payloads taken as text).
    public static func isUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var validator = JSONValidator(bytes: bytes)
        while validator.index < bytes.count {
            if bytes[validator.index] < 0x80 {
                validator.index += 1
                continue
            }
            do { try validator.utf8Sequence() } catch { return false }
        }
        return true
    }
}
