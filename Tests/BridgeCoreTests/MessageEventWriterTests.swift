import BridgeCore
import Testing

@Suite("Messages into change events")
struct MessageEventWriterTests {
    static let head = MessageEventWriter.sourceHead(kind: "kafka", table: ("public", "readings"))

    /// The event (or the reason) for one message.
    static func write(
        _ payload: String, key: String? = nil, format: MessageFormat = .json, keyFields: [String]? = nil
    ) -> (event: String?, problem: String?) {
        let writer = MessageEventWriter(kind: "kafka", format: format, keyFields: keyFields)
        var batch = EventBatch()
        let payloadBytes = Array(payload.utf8)
        let keyBytes = key.map { Array($0.utf8) }
        let problem = payloadBytes.withUnsafeBytes { payload in
            let write = { (messageKey: UnsafeRawBufferPointer?) in
                writer.append(
                    payload: payload, messageKey: messageKey, sourceHead: head,
                    id: { JSONBytes.appendRaw("kafka:readings:0:7", into: &$0) },
                    metadata: { JSONBytes.appendRaw("\"partition\":0,\"offset\":7,", into: &$0) }, into: &batch)
            }
            return keyBytes.map { $0.withUnsafeBytes { write($0) } } ?? write(nil)
        }
        #expect(problem == nil ? batch.eventCount == 1 : batch.bytes.isEmpty, "nothing is left of a refused message")
        return (batch.eventCount == 1 ? String(decoding: batch.event(at: 0), as: UTF8.self) : nil, problem)
    }

    @Test func aJSONObjectBecomesAnInsertWithItsKeyFields() throws {
        let written = Self.write(
            "{\n  \"device\": \"d1\",\n  \"time\": \"2026-12-01T10:00:00Z\", \"t\": 21.5, \"tags\": {\"a\": [1]}}\n",
            keyFields: ["device", "time"])
        let event = try #require(written.event)
        #expect(
            event
                == #"{"id":"kafka:readings:0:7","op":"insert","source":{"db":"kafka","schema":"public","table":"readings","partition":0,"offset":7,"capture":"kafka"},"key":{"device":"d1","time":"2026-12-01T10:00:00Z"},"before":null,"after":{   "device": "d1",   "time": "2026-12-01T10:00:00Z", "t": 21.5, "tags": {"a": [1]}} }"#
        )
        let fields = Array(event.utf8).withUnsafeBufferPointer { EventFields.scan($0, event: 0..<$0.count) }
        #expect(fields.operation(in: Array(event.utf8).withUnsafeBufferPointer { $0 }) == .insert)
        #expect(!event.contains("\n"), "line breaks between tokens become spaces: one event per line")
    }

    @Test func theMessageKeyIsTheKeyWhenItIsAJSONObject() {
        #expect(Self.write(#"{"id":1}"#, key: #"{"id":1}"#).event?.contains(#""key":{"id":1},"#) == true)
        #expect(Self.write(#"{"id":1}"#, key: "plain-key").event?.contains(#""key":null,"#) == true)
        #expect(Self.write(#"{"id":1}"#).event?.contains(#""key":null,"#) == true)
    }

    @Test func badMessagesAreRefusedWithTheReason() {
        let cases: [(String, [String]?, String)] = [
            ("not json", nil, "not valid JSON at byte 0"),
            (#"[1,2]"#, nil, "a JSON value but not an object"),
            (#"{"a":1"#, nil, "the object is not closed"),
            (#"{"a":1} x"#, nil, "unexpected bytes after the value"),
            (#"{"a":"\x"}"#, nil, "unknown escape"),
            (#"{"device":"d"}"#, ["device", "time"], #"no field "time" (a key field)"#),
            (#"{"device":null}"#, ["device"], #"the key field "device" is null"#),
        ]
        for (payload, keyFields, reason) in cases {
            let written = Self.write(payload, keyFields: keyFields)
            #expect(written.event == nil && written.problem?.contains(reason) == true, "\(payload): \(written)")
        }
        let invalidUTF8 = [UInt8](#"{"a":""#.utf8) + [0xC3, 0x28] + [UInt8](#""}"#.utf8)
        let problem = invalidUTF8.withUnsafeBytes { payload in
            var batch = EventBatch()
            return MessageEventWriter(kind: "kafka", format: .json, keyFields: nil).append(
                payload: payload, messageKey: nil, sourceHead: Self.head, id: { _ in }, metadata: { _ in },
                into: &batch)
        }
        #expect(problem?.contains("not UTF-8") == true)
    }

    @Test func nativeEventsAreReplayedWithTheMessagesID() throws {
        let original =
            #"{"id":"0/16B3F48:2","op":"update","source":{"db":"app","schema":"public","table":"orders","capture":"replication"},"key":{"id":1},"before":null,"after":{"id":1,"total":"12.50"},"unchanged_toast":["note"]}"#
        let event = try #require(Self.write(original, format: .native).event)
        #expect(
            event
                == #"{"id":"kafka:readings:0:7","origin_id":"0/16B3F48:2","op":"update","source":{"db":"app","schema":"public","table":"orders","capture":"replication"},"key":{"id":1},"before":null,"after":{"id":1,"total":"12.50"},"unchanged_toast":["note"],"message":{"partition":0,"offset":7,"capture":"kafka"}}"#
        )
        let foreign = try #require(
            Self.write(
                #"{"id":"0/1:1","ok":"x","op":"insert","source":{},"attrs":{"a":1},"after":{"b":2}}"#, format: .native
            )
            .event)
        #expect(
            !foreign.contains("\"ok\"") && !foreign.contains("attrs"), "members outside the event format are left out")
        for (payload, reason) in [
            (#"{"op":"upsert","source":{}}"#, "no known op"), (#"{"op":"insert"}"#, "no source"),
            ("[]", "not an object"), ("{", "not valid JSON"),
        ] {
            #expect(Self.write(payload, format: .native).problem?.contains(reason) == true, "\(payload)")
        }
    }

    /// Debezium's envelope (as Debezium and pgbridge's `debezium` format write it) becomes the
    /// change it describes: op, table, key from the message key, unchanged TOAST columns.
    @Test func debeziumChangesAreReplayedAsChanges() throws {
        let update = Self.write(
            #"{"before":null,"after":{"id":7,"name":"x","doc":"__debezium_unavailable_value"},"source":{"version":"2.7","connector":"postgresql","name":"p","ts_ms":1765015200000,"db":"app","schema":"sales","table":"items","lsn":123},"op":"u","ts_ms":1765015200500,"transaction":null}"#,
            key: #"{"id":7}"#, format: .debezium)
        #expect(
            update.event
                == #"{"id":"kafka:readings:0:7","op":"update","source":{"db":"app","schema":"sales","table":"items","commit_time":"2025-12-06T10:00:00.000000Z","capture":"debezium"},"key":{"id":7},"before":null,"after":{"id":7,"name":"x"},"unchanged_toast":["doc"],"message":{"partition":0,"offset":7,"capture":"kafka"}}"#,
            "\(update)")
        // With schemas (JsonConverter schemas.enable=true): value and key wrapped in payload.
        let delete = Self.write(
            #"{"schema":{"type":"struct"},"payload":{"before":{"id":8},"after":null,"source":{"db":"app","table":"items"},"op":"d"}}"#,
            key: #"{"schema":{"type":"struct"},"payload":{"id":8}}"#, format: .debezium)
        #expect(
            delete.event?.contains(
                #""op":"delete","source":{"db":"app","schema":"public","table":"items","capture":"debezium"},"key":{"id":8},"before":{"id":8},"after":null"#
            ) == true, "\(delete)")
        let truncate = Self.write(
            #"{"before":null,"after":null,"source":{"schema":"public","table":"items"},"op":"t"}"#, format: .debezium)
        #expect(
            truncate.event?.contains(#""op":"truncate""#) == true && truncate.event?.contains(#""truncate":{"#) == true)
        // Without a message key, the source's key fields name the key.
        let keyed = Self.write(
            #"{"after":{"device":"d1","v":1},"source":{"table":"t"},"op":"c"}"#, format: .debezium,
            keyFields: ["device"])
        #expect(keyed.event?.contains(#""key":{"device":"d1"}"#) == true, "\(keyed)")
        let refused: [(String, String?, String)] = [
            (#"{"op":"m","source":{"table":"t"}}"#, nil, "logical-decoding message (op m)"),
            (#"{"after":{"id":1},"source":{"table":"t"}}"#, #"{"id":1}"#, "no op"),
            (#"{"after":{"id":1},"op":"c","source":{}}"#, #"{"id":1}"#, "names no table"),
            (#"{"after":{"id":1},"op":"c","source":{"table":"t"}}"#, nil, "the Debezium change has no key"),
            (#"{"after":null,"op":"c","source":{"table":"t"}}"#, #"{"id":1}"#, "has no after row"),
        ]
        for (payload, key, reason) in refused {
            let written = Self.write(payload, key: key, format: .debezium)
            #expect(written.event == nil && written.problem?.contains(reason) == true, "\(payload): \(written)")
        }
    }

    @Test func textMessagesBecomeAPayloadField() {
        let written = Self.write("line one\n\"two\"", format: .text)
        #expect(written.event?.hasSuffix(#""key":null,"before":null,"after":{"payload":"line one\n\"two\""}}"#) == true)
    }

    @Test func refusedRecordsKeepTheBytes() {
        let text = Array("not json".utf8).withUnsafeBytes { payload in
            MessageEventWriter.refusedRecord(payload: payload) { JSONBytes.appendRaw("\"offset\":3,", into: &$0) }
        }
        #expect(String(decoding: text, as: UTF8.self) == #"{"offset":3,"payload":"not json"}"#)
        let binary = [UInt8]([0xFF, 0x00, 0x01]).withUnsafeBytes { payload in
            MessageEventWriter.refusedRecord(payload: payload) { _ in }
        }
        #expect(String(decoding: binary, as: UTF8.self) == #"{"payload_base64":"/wAB"}"#)
    }

    @Test func tableTemplatesUseTheMessagesPlaceholders() {
        #expect(MessageEventWriter.table("{topic}", values: ["topic": "readings"]) == ("public", "readings"))
        #expect(MessageEventWriter.table("raw.{topic}_in", values: ["topic": "a-b"]) == ("raw", "a-b_in"))
    }

    @Test func theValidatorAcceptsJSONAndNothingElse() throws {
        let valid = [
            #"{}"#, #"[]"#, #" {"a":[1,-2.5e+3,true,false,null,"\u00e9\n",{"b":{}}]} "#, "0", #""x""#, "\"é\"",
        ]
        for text in valid {
            #expect(throws: Never.self, "\(text)") { _ = try Array(text.utf8).withUnsafeBytes(JSONValidator.validate) }
        }
        let invalid = [
            "", "{", #"{"a"}"#, #"{"a":}"#, "[1,]", "01", "1.", "-", "tru", #""\u12""#, "\"\u{01}\"", #"{"a":1,}"#,
            "nul", "[1 2]", #"{"a":"\"#, #""\"#,
        ]
        for text in invalid {
            #expect(throws: JSONValidator.Failure.self, "\(text)") {
                _ = try Array(text.utf8).withUnsafeBytes(JSONValidator.validate)
            }
        }
        let deep = String(repeating: "[", count: JSONValidator.maxDepth + 1) + String(repeating: "]", count: 513)
        #expect(throws: JSONValidator.Failure.self) { _ = try Array(deep.utf8).withUnsafeBytes(JSONValidator.validate) }
        #expect(JSONValidator.isUTF8(UnsafeRawBufferPointer(start: nil, count: 0)))
        #expect(![UInt8]([0xED, 0xA0, 0x80]).withUnsafeBytes(JSONValidator.isUTF8), "a surrogate is not UTF-8")
        #expect(![UInt8]([0xC0, 0x80]).withUnsafeBytes(JSONValidator.isUTF8), "an overlong form is not UTF-8")
    }
}
