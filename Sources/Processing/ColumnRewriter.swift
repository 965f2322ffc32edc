import BridgeCore
import Crypto

/// Rewrites the row objects (`key`, `before`, `after`) of a native event: masks or removes
/// columns, copying everything else byte for byte.
struct ColumnRewriter {
    enum Action {
        case drop
        case mask(MaskMethod)
    }

    /// Column name (UTF-8) → action.
    let actions: [[UInt8]: Action]
    /// The same as a list: a handful of names is found faster by comparing bytes than by
    /// hashing every column name of every event.
    let columns: [(name: [UInt8], action: Action)]
    /// `drop` applies to `before`/`after` only: the key keeps its columns (mask them instead).
    let touchesKey: Bool

    init(actions: [[UInt8]: Action]) {
        self.actions = actions
        columns = actions.map { ($0.key, $0.value) }
        self.touchesKey = actions.values.contains { if case .mask = $0 { true } else { false } }
    }

    /// The action for the column whose escaped name is at `column`.
    func action(for column: Range<Int>, _ scanner: JSONScanner, scratch: inout [UInt8]) -> Action? {
        let key = scanner.bytes[column]
        guard key.contains(0x5C) else {
            for entry in columns where entry.name.count == key.count && entry.name.elementsEqual(key) {
                return entry.action
            }
            return nil
        }
        scratch.removeAll(keepingCapacity: true)
        scanner.appendUnescaped(column, into: &scratch)
        return actions[scratch]
    }

    /// Appends the rewritten event to `out`; `scratch` is working space reused across events.
    /// Only the row objects are read member by member: the bytes between them (id, op, the
    /// source block) are copied as they are.
    func rewrite(
        _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8], scratch: inout [UInt8]
    ) {
        let scanner = JSONScanner(bytes)
        var cursor = fields.event.lowerBound
        while true {
            // The next row object after `cursor`, in the order the event has them.
            var next: Range<Int>?
            func consider(_ row: Range<Int>?) {
                guard let row, row.lowerBound >= cursor, bytes[row.lowerBound] == UInt8(ascii: "{") else { return }
                if next == nil || row.lowerBound < next!.lowerBound { next = row }
            }
            if touchesKey { consider(fields.key) }
            consider(fields.before)
            consider(fields.after)
            guard let row = next else { break }
            out.append(contentsOf: bytes[cursor..<row.lowerBound])
            rewriteRow(row, isKey: row == fields.key, scanner, into: &out, scratch: &scratch)
            cursor = row.upperBound
        }
        out.append(contentsOf: bytes[cursor..<fields.event.upperBound])
    }

    private func rewriteRow(
        _ row: Range<Int>, isKey: Bool, _ scanner: JSONScanner, into out: inout [UInt8], scratch: inout [UInt8]
    ) {
        let bytes = scanner.bytes
        out.append(UInt8(ascii: "{"))
        var firstColumn = true
        scanner.forEachMember(of: row) { column, columnValue in
            let action = action(for: column, scanner, scratch: &scratch)
            if case .drop = action, !isKey { return true }
            if !firstColumn { out.append(UInt8(ascii: ",")) }
            firstColumn = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: bytes[column])
            JSONBytes.appendRaw("\":", into: &out)
            if case .mask(let method) = action, !scanner.isNull(columnValue) {
                Self.mask(columnValue, method, scanner, text: &scratch, into: &out)
            } else {
                out.append(contentsOf: bytes[columnValue])
            }
            return true
        }
        out.append(UInt8(ascii: "}"))
    }

    static func mask(
        _ value: Range<Int>, _ method: MaskMethod, _ scanner: JSONScanner, text: inout [UInt8], into out: inout [UInt8]
    ) {
        text.removeAll(keepingCapacity: true)
        scanner.appendText(value, into: &text)
        out.append(UInt8(ascii: "\""))
        switch method {
        case .sha256:
            appendHex(SHA256.hash(data: text), into: &out)
        case .md5:
            appendHex(Insecure.MD5.hash(data: text), into: &out)
        case .redact:
            JSONBytes.appendRaw("***", into: &out)
        }
        out.append(UInt8(ascii: "\""))
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    static func appendHex(_ digest: some Sequence<UInt8>, into out: inout [UInt8]) {
        let digits = hexDigits
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
    }
}
