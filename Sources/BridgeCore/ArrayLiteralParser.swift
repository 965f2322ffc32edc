/// Turns a PostgreSQL array literal (`{1,2,NULL}`, `{{"a,b","c\"d"},{e,f}}`, `[0:1]={1,2}`)
/// into a JSON array whose elements use the element type's mapping.
struct ArrayLiteralParser {
    let text: UnsafeRawBufferPointer
    let element: PostgresType.Mapping
    var position = 0
    var scratch: [UInt8] = []

    init(text: UnsafeRawBufferPointer, element: PostgresType.Mapping) {
        self.text = text
        self.element = element
    }

    /// Appends the JSON array; on a malformed literal appends nothing and returns false.
    mutating func appendJSON(into out: inout [UInt8]) -> Bool {
        let mark = out.count
        // Optional dimension decoration: [lo:hi][lo:hi]=
        if position < text.count && text[position] == UInt8(ascii: "[") {
            while position < text.count && text[position] != UInt8(ascii: "=") { position += 1 }
            position += 1
        }
        guard parseArray(into: &out), position == text.count else {
            out.removeSubrange(mark...)
            return false
        }
        return true
    }

    private mutating func parseArray(into out: inout [UInt8]) -> Bool {
        guard position < text.count, text[position] == UInt8(ascii: "{") else { return false }
        position += 1
        out.append(UInt8(ascii: "["))
        if position < text.count && text[position] == UInt8(ascii: "}") {
            position += 1
            out.append(UInt8(ascii: "]"))
            return true
        }
        while true {
            guard position < text.count else { return false }
            let c = text[position]
            if c == UInt8(ascii: "{") {
                guard parseArray(into: &out) else { return false }
            } else if c == UInt8(ascii: "\"") {
                guard parseQuoted(into: &out) else { return false }
            } else {
                guard parseUnquoted(into: &out) else { return false }
            }
            guard position < text.count else { return false }
            if text[position] == UInt8(ascii: ",") {
                position += 1
                out.append(UInt8(ascii: ","))
            } else if text[position] == UInt8(ascii: "}") {
                position += 1
                out.append(UInt8(ascii: "]"))
                return true
            } else {
                return false
            }
        }
    }

    private mutating func parseQuoted(into out: inout [UInt8]) -> Bool {
        position += 1
        scratch.removeAll(keepingCapacity: true)
        while position < text.count {
            let c = text[position]
            if c == UInt8(ascii: "\\") {
                position += 1
                guard position < text.count else { return false }
                scratch.append(text[position])
            } else if c == UInt8(ascii: "\"") {
                position += 1
                scratch.withUnsafeBytes { ValueEncoder.append(text: $0, mapping: element, into: &out) }
                return true
            } else {
                scratch.append(c)
            }
            position += 1
        }
        return false
    }

    private mutating func parseUnquoted(into out: inout [UInt8]) -> Bool {
        let start = position
        while position < text.count {
            let c = text[position]
            if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") { break }
            if c == UInt8(ascii: "{") || c == UInt8(ascii: "\"") { return false }
            position += 1
        }
        let token = UnsafeRawBufferPointer(rebasing: text[start..<position])
        guard token.count > 0 else { return false }
        if token.count == 4 && token.elementsEqual("NULL".utf8) {
            JSONBytes.appendRaw("null", into: &out)
        } else {
            ValueEncoder.append(text: token, mapping: element, into: &out)
        }
        return true
    }
}
