/// The attributes and data of a structured CloudEvent (pgbridge's `cloudevents` format), for
/// sinks that send it in binary content mode (attributes as headers, data as the body).
public struct CloudEventFields: Sendable {
    /// Attribute name → value (string contents, still JSON-escaped), except `data`.
    public var attributes: [(name: Range<Int>, value: Range<Int>)] = []
    /// The `data` value (the native event).
    public var data: Range<Int>?

    public static func scan(_ bytes: UnsafeBufferPointer<UInt8>, event: Range<Int>) -> CloudEventFields {
        var fields = CloudEventFields()
        let scanner = JSONScanner(bytes)
        scanner.forEachMember(of: scanner.skipWhitespace(event.lowerBound)..<event.upperBound) { key, value in
            if bytes[key].elementsEqual("data".utf8) {
                fields.data = value
            } else if bytes[key].elementsEqual("datacontenttype".utf8) {
                // sent as Content-Type instead
            } else if value.count >= 2, bytes[value.lowerBound] == UInt8(ascii: "\"") {
                fields.attributes.append((key, (value.lowerBound + 1)..<(value.upperBound - 1)))
            }
            return true
        }
        return fields
    }
}
