import Foundation

/// Turns broker messages into native change events (`format: json` and `text`):
///
/// `{"id":"<kind>:…","op":"insert","source":{"db":"<kind>","schema":…,"table":…,<metadata>,
/// "capture":"<kind>"},"key":…,"before":null,"after":…}`
///
/// A message that cannot be an event (not JSON, not an object, a key field missing, not UTF-8
/// text) appends nothing: the caller gets the reason and dead-letters the message.
public struct MessageEventWriter: Sendable {
    public let format: MessageFormat
    /// The key fields, unescaped (nil: the message key when it is a JSON object).
    let keyFields: [[UInt8]]?
    /// `"name":` of each key field, escaped.
    let keyMembers: [[UInt8]]
    /// `"capture":"<kind>"}`
    let captureTail: [UInt8]

    public init(kind: String, format: MessageFormat, keyFields: [String]?) {
        self.format = format
        self.keyFields = keyFields.map { $0.map { Array($0.utf8) } }
        keyMembers = (keyFields ?? []).map { field in
            var out: [UInt8] = []
            JSONBytes.appendString(field, into: &out)
            out.append(UInt8(ascii: ":"))
            return out
        }
        var tail: [UInt8] = []
        JSONBytes.appendRaw("\"capture\":", into: &tail)
        JSONBytes.appendString(kind, into: &tail)
        tail.append(UInt8(ascii: "}"))
        captureTail = tail
    }

    /// `"db":"<kind>","schema":"…","table":"…",`: what every event of one table starts its
    /// source block with (made once per topic, queue or stream).
    public static func sourceHead(kind: String, table: (schema: String, name: String)) -> [UInt8] {
        var out: [UInt8] = []
        JSONBytes.appendRaw("\"db\":", into: &out)
        JSONBytes.appendString(kind, into: &out)
        JSONBytes.appendRaw(",\"schema\":", into: &out)
        JSONBytes.appendString(table.schema, into: &out)
        JSONBytes.appendRaw(",\"table\":", into: &out)
        JSONBytes.appendString(table.name, into: &out)
        out.append(UInt8(ascii: ","))
        return out
    }

    /// The table a `table` template names for one message's placeholders: `schema.table`, or
    /// `table` in `public`.
    public static func table(_ template: String, values: [String: String]) -> (schema: String, name: String) {
        var rendered = template
        for (name, value) in values { rendered = rendered.replacingOccurrences(of: "{\(name)}", with: value) }
        guard let dot = rendered.firstIndex(of: ".") else { return ("public", rendered) }
        return (String(rendered[..<dot]), String(rendered[rendered.index(after: dot)...]))
    }

    /// Appends the event for one message. `id` writes the id's contents (no quotes), `metadata`
    /// the source block's members after `sourceHead` (each followed by a comma). Returns why
    /// the message cannot be an event (nothing appended then).
    public func append(
        payload: UnsafeRawBufferPointer, messageKey: UnsafeRawBufferPointer?, sourceHead: [UInt8],
        id: (inout [UInt8]) -> Void, metadata: (inout [UInt8]) -> Void, into batch: inout EventBatch
    ) -> String? {
        if format == .native { return appendNative(payload: payload, id: id, metadata: metadata, into: &batch) }
        if format == .debezium {
            return appendDebezium(payload: payload, messageKey: messageKey, id: id, metadata: metadata, into: &batch)
        }
        let start = batch.bytes.count
        JSONBytes.appendRaw("{\"id\":\"", into: &batch.bytes)
        id(&batch.bytes)
        JSONBytes.appendRaw("\",\"op\":\"insert\",\"source\":{", into: &batch.bytes)
        batch.bytes.append(contentsOf: sourceHead)
        metadata(&batch.bytes)
        batch.bytes.append(contentsOf: captureTail)
        JSONBytes.appendRaw(",\"key\":", into: &batch.bytes)
        switch format {
        case .json:
            var lineBreaks = false
            do {
                guard try JSONValidator.validate(payload, lineBreaks: &lineBreaks) == .object else {
                    batch.bytes.removeSubrange(start...)
                    return
                        "the message is a JSON value but not an object: format json takes one JSON object per message"
                }
            } catch {
                batch.bytes.removeSubrange(start...)
                return
                    "the message is \(error) (format json takes one JSON object per message; use format text for other messages)"
            }
            if let problem = appendKey(payload: payload, messageKey: messageKey, into: &batch.bytes) {
                batch.bytes.removeSubrange(start...)
                return problem
            }
            JSONBytes.appendRaw(",\"before\":null,\"after\":", into: &batch.bytes)
            if lineBreaks {
                JSONBytes.appendRawJSON(payload, into: &batch.bytes)
            } else {
                // Valid UTF-8 without line breaks (the validator checked): copied as it is.
                batch.bytes.append(contentsOf: payload)
            }
        case .text:
            guard JSONValidator.isUTF8(payload) else {
                batch.bytes.removeSubrange(start...)
                return "the message is not UTF-8 text (format text)"
            }
            JSONBytes.appendRaw("null,\"before\":null,\"after\":{\"payload\":", into: &batch.bytes)
            JSONBytes.appendString(payload, into: &batch.bytes)
            batch.bytes.append(UInt8(ascii: "}"))
        case .native, .debezium:
            preconditionFailure("handled above")
        }
        batch.bytes.append(UInt8(ascii: "}"))
        batch.endEvent()
        return nil
    }

    static let knownOperations: Set<String> = [
        "insert", "update", "delete", "truncate", "read", "message", "chunk_dropped",
    ]

    /// `format: native`: a change event pgbridge wrote (its own sinks' native format), replayed
    /// as the change it describes. Its id becomes the message's (ordered per partition, which
    /// the original ids are not across partitions), kept as `origin_id`; the message's metadata
    /// goes into `message`; every other member is kept as it is.
    func appendNative(
        payload: UnsafeRawBufferPointer, id: (inout [UInt8]) -> Void, metadata: (inout [UInt8]) -> Void,
        into batch: inout EventBatch
    ) -> String? {
        if let problem = Self.notAnObject(payload, expected: "format native takes pgbridge's change events") {
            return problem
        }
        let bytes = payload.assumingMemoryBound(to: UInt8.self)
        let scanner = JSONScanner(bytes)
        let object = scanner.skipWhitespace(0)..<bytes.count
        var members: [(key: Range<Int>, value: Range<Int>)] = []
        var operation: String?
        var hasSource = false
        scanner.forEachMember(of: object) { key, value in
            members.append((key, value))
            if scanner.keyEquals(key, Self.opName), bytes[value.lowerBound] == 0x22 {
                operation = String(decoding: bytes[(value.lowerBound + 1)..<(value.upperBound - 1)], as: UTF8.self)
            } else if scanner.keyEquals(key, Self.sourceName), bytes[value.lowerBound] == 0x7B {
                hasSource = true
            }
            return true
        }
        guard let operation, Self.knownOperations.contains(operation) else {
            return "the message is not a pgbridge change event: it has no known op (format native)"
        }
        guard hasSource else { return "the message is not a pgbridge change event: it has no source (format native)" }
        JSONBytes.appendRaw("{\"id\":\"", into: &batch.bytes)
        id(&batch.bytes)
        batch.bytes.append(UInt8(ascii: "\""))
        for member in members {
            // Only the members of pgbridge's event format: another member could be taken for
            // one of them by the scanners that read events by a name's first byte and length.
            let isID = scanner.keyEquals(member.key, Self.idName)
            guard isID || Self.eventMembers.contains(where: { scanner.keyEquals(member.key, $0) }) else { continue }
            batch.bytes.append(UInt8(ascii: ","))
            if isID {
                JSONBytes.appendRaw("\"origin_id\"", into: &batch.bytes)
            } else {
                batch.bytes.append(
                    contentsOf: UnsafeRawBufferPointer(
                        rebasing: payload[(member.key.lowerBound - 1)..<(member.key.upperBound + 1)]))
            }
            batch.bytes.append(UInt8(ascii: ":"))
            JSONBytes.appendRawJSON(UnsafeRawBufferPointer(rebasing: payload[member.value]), into: &batch.bytes)
        }
        endReplayedEvent(metadata: metadata, into: &batch)
        return nil
    }

    /// Why `payload` is not a JSON object, in the words of the format (nil when it is one).
    static func notAnObject(_ payload: UnsafeRawBufferPointer, expected: String) -> String? {
        do {
            guard try JSONValidator.validate(payload) == .object else {
                return "the message is a JSON value but not an object: \(expected)"
            }
        } catch {
            return "the message is \(error) (\(expected))"
        }
        return nil
    }

    /// Ends a replayed change (`native`, `debezium`): the message's metadata as `message`.
    func endReplayedEvent(metadata: (inout [UInt8]) -> Void, into batch: inout EventBatch) {
        JSONBytes.appendRaw(",\"message\":{", into: &batch.bytes)
        metadata(&batch.bytes)
        batch.bytes.append(contentsOf: captureTail)
        batch.bytes.append(UInt8(ascii: "}"))
        batch.endEvent()
    }

    static let eventMembers = ["op", "source", "key", "before", "after", "unchanged_toast", "truncate", "chunk"].map {
        Array($0.utf8)
    }
    static let opName = Array("op".utf8)
    static let sourceName = Array("source".utf8)
    static let idName = Array("id".utf8)

    /// `{"f1":v1,…}` from the key fields of the payload, the message key when it is a JSON
    /// object, else `null`.
    func appendKey(payload: UnsafeRawBufferPointer, messageKey: UnsafeRawBufferPointer?, into out: inout [UInt8])
        -> String?
    {
        guard let keyFields else {
            if let messageKey, messageKey.count > 0,
                (try? JSONValidator.validate(messageKey)) == .object
            {
                JSONBytes.appendRawJSON(messageKey, into: &out)
            } else {
                JSONBytes.appendRaw("null", into: &out)
            }
            return nil
        }
        let bytes = payload.assumingMemoryBound(to: UInt8.self)
        let scanner = JSONScanner(bytes)
        let object = scanner.skipWhitespace(0)..<bytes.count
        out.append(UInt8(ascii: "{"))
        for (index, field) in keyFields.enumerated() {
            guard let value = scanner.member(field, of: object) else {
                return
                    "the message has no field \"\(String(decoding: field, as: UTF8.self))\" (a key field): add it to the message or change the source's key"
            }
            if scanner.isNull(value) {
                return "the key field \"\(String(decoding: field, as: UTF8.self))\" is null: a key needs a value"
            }
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: keyMembers[index])
            JSONBytes.appendRawJSON(UnsafeRawBufferPointer(rebasing: payload[value]), into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return nil
    }

    /// A refused message as a dead-letter record: `{<metadata>"payload":"…"}` (or
    /// `"payload_base64"` when the bytes are not UTF-8).
    public static func refusedRecord(
        payload: UnsafeRawBufferPointer, metadata: (inout [UInt8]) -> Void
    ) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        metadata(&out)
        if JSONValidator.isUTF8(payload) {
            JSONBytes.appendRaw("\"payload\":", into: &out)
            JSONBytes.appendString(payload, into: &out)
        } else {
            JSONBytes.appendRaw("\"payload_base64\":\"", into: &out)
            JSONBytes.appendBase64(payload, into: &out)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}
