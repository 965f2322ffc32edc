import BridgeCore

/// Rows of `COPY … FROM STDIN` in text format: fields separated by tabs, `\N` for NULL, and
/// backslash, tab, newline and carriage return escaped.
struct CopyText {
    var bytes: [UInt8] = []

    mutating func field(_ value: UnsafeBufferPointer<UInt8>, _ range: Range<Int>?, first: Bool = false) {
        if !first { bytes.append(0x09) }
        guard let range else {
            bytes.append(contentsOf: [0x5C, 0x4E])
            return
        }
        escaped(value, range)
    }

    /// A field of plain ASCII text without tabs, newlines or backslashes (numbers, op names).
    mutating func plain(_ text: StaticString) {
        bytes.append(0x09)
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func number(_ value: Int, first: Bool = false) {
        if !first { bytes.append(0x09) }
        JSONBytes.appendInt(Int64(value), into: &bytes)
    }

    mutating func bytesField(_ value: [UInt8]) {
        value.withUnsafeBufferPointer { field($0, 0..<$0.count) }
    }

    mutating func null() { bytes.append(contentsOf: [0x09, 0x5C, 0x4E]) }

    mutating func endRow() { bytes.append(0x0A) }
}
