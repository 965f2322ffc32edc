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
    /// `drop` applies to `before`/`after` only: the key keeps its columns (mask them instead).
    let touchesKey: Bool

    init(actions: [[UInt8]: Action]) {
        self.actions = actions
        self.touchesKey = actions.values.contains { if case .mask = $0 { true } else { false } }
    }

    /// Appends the rewritten event to `out`.
    func rewrite(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        let scanner = JSONScanner(bytes)
        var name: [UInt8] = []
        out.append(UInt8(ascii: "{"))
        var first = true
        scanner.forEachMember(of: fields.event) { key, value in
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: bytes[key])
            JSONBytes.appendRaw("\":", into: &out)
            let isRow = value == fields.before || value == fields.after || (touchesKey && value == fields.key)
            guard isRow, bytes[value.lowerBound] == UInt8(ascii: "{") else {
                out.append(contentsOf: bytes[value])
                return true
            }
            let isKey = value == fields.key
            out.append(UInt8(ascii: "{"))
            var firstColumn = true
            scanner.forEachMember(of: value) { column, columnValue in
                name.removeAll(keepingCapacity: true)
                scanner.appendUnescaped(column, into: &name)
                let action = actions[name]
                if case .drop = action, !isKey { return true }
                if !firstColumn { out.append(UInt8(ascii: ",")) }
                firstColumn = false
                out.append(UInt8(ascii: "\""))
                out.append(contentsOf: bytes[column])
                JSONBytes.appendRaw("\":", into: &out)
                if case .mask(let method) = action, !scanner.isNull(columnValue) {
                    Self.mask(columnValue, method, scanner, into: &out)
                } else {
                    out.append(contentsOf: bytes[columnValue])
                }
                return true
            }
            out.append(UInt8(ascii: "}"))
            return true
        }
        out.append(UInt8(ascii: "}"))
    }

    static func mask(_ value: Range<Int>, _ method: MaskMethod, _ scanner: JSONScanner, into out: inout [UInt8]) {
        var text: [UInt8] = []
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

    static func appendHex(_ digest: some Sequence<UInt8>, into out: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
    }
}
