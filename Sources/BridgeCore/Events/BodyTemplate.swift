/// A request body built from an event, Go-template style: `sensor {{ .after.device }} is at
/// {{ .after.temp }}`. Placeholders are field paths with a leading dot (`.op`,
/// `.source.table`, `.key.id`, `.after.temp`, `.before.temp`, or `.temp` for the row's column).
///
/// When the template is JSON (it starts with `{` or `[`), values are JSON-escaped so that a
/// placeholder inside quotes stays valid JSON: `{"text": "{{ .after.note }}"}`.
public struct BodyTemplate: Sendable, CustomStringConvertible {
    enum Part: Sendable {
        case literal([UInt8])
        case field(FieldPath)
    }

    let parts: [Part]
    public let isJSON: Bool
    public let description: String

    public init(_ text: String) throws(TemplateError) {
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { parts.append(.literal(Array(rest[..<open.lowerBound].utf8))) }
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw TemplateError(message: "'{{' without a closing '}}' in the template")
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingSpaces
            guard name.hasPrefix("."), let path = FieldPath(parsing: String(name.dropFirst())) else {
                throw TemplateError(
                    message: "unknown placeholder {{ \(name) }}: write a field with a leading dot, e.g. "
                        + "{{ .after.temp }}, {{ .op }}, {{ .source.table }} or {{ .key.id }}")
            }
            parts.append(.field(path))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { parts.append(.literal(Array(rest.utf8))) }
        self.parts = parts
        self.description = text
        let first = text.first { !$0.isWhitespace }
        self.isJSON = first == "{" || first == "["
    }

    /// Renders the template for one event; `escapeJSON` JSON-escapes the values.
    public func render(
        _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, escapeJSON: Bool, into out: inout [UInt8]
    ) {
        var value: [UInt8] = []
        for part in parts {
            switch part {
            case .literal(let literal):
                out.append(contentsOf: literal)
            case .field(let path):
                if escapeJSON {
                    value.removeAll(keepingCapacity: true)
                    path.appendText(from: fields, bytes, into: &value)
                    value.withUnsafeBytes { JSONBytes.appendEscaped($0, into: &out) }
                } else {
                    path.appendText(from: fields, bytes, into: &out)
                }
            }
        }
    }
}
