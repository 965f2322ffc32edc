/// `format: debezium`: Debezium change-event values (the schemaless envelope, or the envelope
/// with `schema` and `payload`) turned back into the changes they describe.
extension MessageEventWriter {
    static let debeziumOperations: [UInt8: StaticString] = [
        UInt8(ascii: "c"): "insert", UInt8(ascii: "u"): "update", UInt8(ascii: "d"): "delete",
        UInt8(ascii: "r"): "read", UInt8(ascii: "t"): "truncate",
    ]
    /// The value Debezium writes for an unchanged TOAST column.
    static let unavailableValue = Array("\"__debezium_unavailable_value\"".utf8)
    static let payloadName = Array("payload".utf8)
    static let schemaName = Array("schema".utf8)
    static let tableName = Array("table".utf8)
    static let dbName = Array("db".utf8)
    static let beforeName = Array("before".utf8)
    static let afterName = Array("after".utf8)
    static let timestampName = Array("ts_ms".utf8)

    /// Appends the change a Debezium value describes: `op` c/u/d/r/t, `source.schema` and
    /// `source.table` (the table), `before`, `after` (`__debezium_unavailable_value` columns
    /// become `unchanged_toast`), the key from the message key (Debezium's key: the key columns
    /// as a JSON object) or else from the source's `key` fields. The message's metadata goes
    /// into `message`, as for `native`.
    func appendDebezium(
        payload: UnsafeRawBufferPointer, messageKey: UnsafeRawBufferPointer?, id: (inout [UInt8]) -> Void,
        metadata: (inout [UInt8]) -> Void, into batch: inout EventBatch
    ) -> String? {
        if let problem = Self.notAnObject(payload, expected: "format debezium takes Debezium change events") {
            return problem
        }
        let bytes = payload.assumingMemoryBound(to: UInt8.self)
        let scanner = JSONScanner(bytes)
        let envelope = Self.unwrapped(scanner)
        var members: [String: Range<Int>] = [:]
        scanner.forEachMember(of: envelope) { key, value in
            for name in ["op", "source", "before", "after"] where scanner.keyEquals(key, Array(name.utf8)) {
                members[name] = value
            }
            return true
        }
        guard let opValue = members["op"], opValue.count == 3, bytes[opValue.lowerBound] == 0x22 else {
            return "the message is not a Debezium change event: it has no op (format debezium)"
        }
        let code = bytes[opValue.lowerBound + 1]
        guard let operation = Self.debeziumOperations[code] else {
            if code == UInt8(ascii: "m") {
                return "the message is a Debezium logical-decoding message (op m), not a row change (format debezium)"
            }
            return "the message is not a Debezium change event: unknown op (format debezium)"
        }
        guard let source = members["source"], bytes[source.lowerBound] == 0x7B,
            let table = scanner.member(Self.tableName, of: source), bytes[table.lowerBound] == 0x22
        else {
            return "the message is not a Debezium change event: its source names no table (format debezium)"
        }
        let schema = scanner.member(Self.schemaName, of: source).flatMap { bytes[$0.lowerBound] == 0x22 ? $0 : nil }
        let db = scanner.member(Self.dbName, of: source).flatMap { bytes[$0.lowerBound] == 0x22 ? $0 : nil }
        let before = members["before"].flatMap { bytes[$0.lowerBound] == 0x7B ? $0 : nil }
        let after = members["after"].flatMap { bytes[$0.lowerBound] == 0x7B ? $0 : nil }
        if code != UInt8(ascii: "t"), (code == UInt8(ascii: "d") ? before : after) == nil {
            return
                "the Debezium change has no \(code == UInt8(ascii: "d") ? "before" : "after") row (format debezium)"
        }

        let start = batch.bytes.count
        func raw(_ range: Range<Int>) {
            batch.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: payload[range]))
        }
        JSONBytes.appendRaw("{\"id\":\"", into: &batch.bytes)
        id(&batch.bytes)
        JSONBytes.appendRaw("\",\"op\":\"", into: &batch.bytes)
        JSONBytes.appendRaw(operation, into: &batch.bytes)
        JSONBytes.appendRaw("\",\"source\":{\"db\":", into: &batch.bytes)
        if let db { raw(db) } else { JSONBytes.appendRaw("\"debezium\"", into: &batch.bytes) }
        JSONBytes.appendRaw(",\"schema\":", into: &batch.bytes)
        if let schema { raw(schema) } else { JSONBytes.appendRaw("\"public\"", into: &batch.bytes) }
        JSONBytes.appendRaw(",\"table\":", into: &batch.bytes)
        raw(table)
        if let milliseconds = scanner.member(Self.timestampName, of: source).flatMap({ Self.integer(bytes[$0]) }),
            (0...253_402_300_799_000).contains(milliseconds)
        {
            JSONBytes.appendRaw(",\"commit_time\":\"", into: &batch.bytes)
            PostgresTime.writeRFC3339(PostgresTime.fromUnixMicroseconds(milliseconds * 1000), into: &batch.bytes)
            batch.bytes.append(UInt8(ascii: "\""))
        }
        JSONBytes.appendRaw(",\"capture\":\"debezium\"},\"key\":", into: &batch.bytes)
        if code == UInt8(ascii: "t") {
            JSONBytes.appendRaw("null", into: &batch.bytes)
        } else if let problem = appendDebeziumKey(
            messageKey: messageKey, row: code == UInt8(ascii: "d") ? before! : after!, scanner, payload,
            into: &batch.bytes)
        {
            batch.bytes.removeSubrange(start...)
            return problem
        }
        JSONBytes.appendRaw(",\"before\":", into: &batch.bytes)
        if let before { raw(before) } else { JSONBytes.appendRaw("null", into: &batch.bytes) }
        JSONBytes.appendRaw(",\"after\":", into: &batch.bytes)
        var unchanged: [Range<Int>] = []
        if let after {
            batch.bytes.append(UInt8(ascii: "{"))
            var first = true
            scanner.forEachMember(of: after) { key, value in
                if bytes[value].elementsEqual(Self.unavailableValue) {
                    unchanged.append(key)
                } else {
                    if !first { batch.bytes.append(UInt8(ascii: ",")) }
                    first = false
                    raw((key.lowerBound - 1)..<(key.upperBound + 1))
                    batch.bytes.append(UInt8(ascii: ":"))
                    JSONBytes.appendRawJSON(UnsafeRawBufferPointer(rebasing: payload[value]), into: &batch.bytes)
                }
                return true
            }
            batch.bytes.append(UInt8(ascii: "}"))
        } else {
            JSONBytes.appendRaw("null", into: &batch.bytes)
        }
        if !unchanged.isEmpty {
            JSONBytes.appendRaw(",\"unchanged_toast\":[", into: &batch.bytes)
            for (index, key) in unchanged.enumerated() {
                if index > 0 { batch.bytes.append(UInt8(ascii: ",")) }
                raw((key.lowerBound - 1)..<(key.upperBound + 1))
            }
            batch.bytes.append(UInt8(ascii: "]"))
        }
        if code == UInt8(ascii: "t") {
            JSONBytes.appendRaw(",\"truncate\":{\"cascade\":false,\"restart_identity\":false}", into: &batch.bytes)
        }
        endReplayedEvent(metadata: metadata, into: &batch)
        return nil
    }

    /// The object a scanner's whole text is, or its `payload` when it is Kafka Connect's
    /// `{"schema":…,"payload":{…}}` (JsonConverter with schemas enabled).
    static func unwrapped(_ scanner: JSONScanner) -> Range<Int> {
        let bytes = scanner.bytes
        let object = scanner.skipWhitespace(0)..<bytes.count
        if let inner = scanner.member(payloadName, of: object), bytes[inner.lowerBound] == 0x7B,
            scanner.member(schemaName, of: object) != nil
        {
            return inner
        }
        return object
    }

    /// The key: the message key when it is a JSON object (Debezium's schemaless key, or its
    /// `payload` with schemas), else the source's `key` fields of `row`.
    private func appendDebeziumKey(
        messageKey: UnsafeRawBufferPointer?, row: Range<Int>, _ scanner: JSONScanner, _ payload: UnsafeRawBufferPointer,
        into out: inout [UInt8]
    ) -> String? {
        if let messageKey, messageKey.count > 0, (try? JSONValidator.validate(messageKey)) == .object {
            let object = Self.unwrapped(JSONScanner(messageKey.assumingMemoryBound(to: UInt8.self)))
            JSONBytes.appendRawJSON(UnsafeRawBufferPointer(rebasing: messageKey[object]), into: &out)
            return nil
        }
        guard let keyFields else {
            return
                "the Debezium change has no key: the message key is not a JSON object (Debezium writes the key columns there); name the key columns with the source's key"
        }
        out.append(UInt8(ascii: "{"))
        for (index, field) in keyFields.enumerated() {
            guard let value = scanner.member(field, of: row), !scanner.isNull(value) else {
                return
                    "the Debezium change's row has no value for \"\(String(decoding: field, as: UTF8.self))\" (a key field)"
            }
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: keyMembers[index])
            JSONBytes.appendRawJSON(UnsafeRawBufferPointer(rebasing: payload[value]), into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return nil
    }

    /// A JSON integer's value (nil for anything else).
    static func integer(_ digits: some Collection<UInt8>) -> Int64? {
        var value: Int64 = 0
        var any = false
        for byte in digits {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int64(byte - 0x30))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
            any = true
        }
        return any ? value : nil
    }
}
