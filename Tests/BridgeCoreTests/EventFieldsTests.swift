import BridgeCore
import Testing

@Suite("Event fields, templates and service URLs")
struct EventFieldsTests {
    static let event = #"""
        {"id":"0/1A2B3C4D:3","op":"update","source":{"db":"app","schema":"public","table":"con\"ditions","chunk":"_timescaledb_internal._hyper_1_2_chunk","lsn":"0/1A2B3C00","commit_lsn":"0/1A2B3C4D","xid":745,"commit_time":"2026-11-20T10:00:00.123456Z","capture":"replication"},"key":{"id":1,"site":"b\u00e9"},"before":{"id":1,"site":"old"},"after":{"id":1,"site":"b\u00e9","temp":21.5,"tags":{"a":[1,2]},"note":null,"text":"line\nbreak"}}
        """#

    func withFields<T>(_ json: String = event, _ body: (EventFields, UnsafeBufferPointer<UInt8>) throws -> T) rethrows
        -> T
    {
        let bytes = Array(json.utf8)
        return try bytes.withUnsafeBufferPointer { buffer in
            try body(EventFields.scan(buffer, event: 0..<buffer.count), buffer)
        }
    }

    func text(_ range: Range<Int>?, _ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        range.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    @Test func scanFindsTopLevelAndSourceFields() {
        withFields { fields, bytes in
            #expect(text(fields.id, bytes) == "0/1A2B3C4D:3")
            #expect(fields.operation(in: bytes) == .update)
            #expect(text(fields.schema, bytes) == "public")
            #expect(text(fields.table, bytes) == #"con\"ditions"#)
            #expect(text(fields.chunk, bytes) == "_timescaledb_internal._hyper_1_2_chunk")
            #expect(text(fields.xid, bytes) == "745")
            #expect(text(fields.key, bytes) == #"{"id":1,"site":"b\u00e9"}"#)
            #expect(text(fields.before, bytes) == #"{"id":1,"site":"old"}"#)
            #expect(text(fields.after, bytes)?.hasSuffix(#""text":"line\nbreak"}"#) == true)
        }
    }

    @Test func scanWithAfterMembersReadsTheRowInTheSamePass() {
        let bytes = Array(Self.event.utf8)
        bytes.withUnsafeBufferPointer { buffer in
            var members: [(String, String)] = []
            let fields = EventFields.scan(buffer, event: 0..<buffer.count) { key, value in
                members.append((text(key, buffer)!, text(value, buffer)!))
            }
            #expect(members.map(\.0) == ["id", "site", "temp", "tags", "note", "text"])
            #expect(members.map(\.1) == ["1", #""b\u00e9""#, "21.5", #"{"a":[1,2]}"#, "null", #""line\nbreak""#])
            let plain = EventFields.scan(buffer, event: 0..<buffer.count)
            #expect(fields.after == plain.after && fields.key == plain.key && fields.id == plain.id)
            #expect(fields.table == plain.table && fields.commitTime == plain.commitTime)
        }
        // An empty row, a null row and a row whose object is cut short.
        for (json, count) in [(#"{"op":"insert","after":{},"id":"x"}"#, 0), (#"{"after":null,"id":"x"}"#, 0)] {
            let bytes = Array(json.utf8)
            bytes.withUnsafeBufferPointer { buffer in
                var seen = 0
                let fields = EventFields.scan(buffer, event: 0..<buffer.count) { _, _ in seen += 1 }
                #expect(seen == count && text(fields.id, buffer) == "x")
            }
        }
        let cut = Array(#"{"id":"x","after":{"a":1,"b":"#.utf8)
        cut.withUnsafeBufferPointer { buffer in
            let fields = EventFields.scan(buffer, event: 0..<buffer.count) { _, _ in }
            #expect(text(fields.id, buffer) == "x" && fields.after == nil)
        }
    }

    @Test func fieldPathsResolveColumnsAndUnescapeText() {
        withFields { fields, bytes in
            func render(_ path: String) -> String? {
                guard let field = FieldPath(parsing: path) else { return nil }
                var out: [UInt8] = []
                field.appendText(from: fields, bytes, into: &out)
                return String(decoding: out, as: UTF8.self)
            }
            #expect(render("after.temp") == "21.5")
            #expect(render("temp") == "21.5")
            #expect(render("site") == "bé")
            #expect(render("before.site") == "old")
            #expect(render("key") == "1:bé")
            #expect(render("key.site") == "bé")
            #expect(render("after.tags") == #"{"a":[1,2]}"#)
            #expect(render("after.note") == "")
            #expect(render("after.missing") == "")
            #expect(render("text") == "line\nbreak")
            #expect(render("source.table") == #"con"ditions"#)
            #expect(render("op") == "update")
        }
        #expect(FieldPath(parsing: "source.nope") == nil)
        #expect(FieldPath(parsing: "after.") == nil)
    }

    @Test func templatesRenderAndReportBadPlaceholders() throws {
        try withFields { fields, bytes in
            let topic = try NameTemplate("pg.{schema}.{table}", pipe: "p")
            #expect(String(decoding: topic.render(fields, bytes), as: UTF8.self) == #"pg.public.con"ditions"#)
            let key = try NameTemplate("{pipe}:{ table }:{key}:{op}", pipe: "orders")
            #expect(String(decoding: key.render(fields, bytes), as: UTF8.self) == #"orders:con"ditions:1:bé:update"#)
            #expect(!topic.dependsOnRowValues && key.dependsOnRowValues)
            var old: [UInt8] = []
            key.render(fields, bytes, keyValuesFrom: fields.before, into: &old)
            #expect(String(decoding: old, as: UTF8.self) == #"orders:con"ditions:1:old:update"#)
            let pattern = try NameTemplate("pg:{table}*:{key}", pipe: "p").globPattern(fields, bytes)
            #expect(String(decoding: pattern, as: UTF8.self) == #"pg:con"ditions\*:*"#)
        }
        #expect(throws: TemplateError.self) { try NameTemplate("pg.{tabel}", pipe: "p") }
        #expect(throws: TemplateError.self) { try NameTemplate("pg.{table", pipe: "p") }
        #expect(throws: TemplateError.self) { try NameTemplate("pg.table}", pipe: "p") }
    }

    @Test func scannerStopsSafelyOnTruncatedInput() {
        let json = #"{"id":"0/1:1","op":"insert","source":{"schema":"public","tab"#
        withFields(json) { fields, bytes in
            #expect(text(fields.id, bytes) == "0/1:1")
            #expect(fields.table == nil && fields.after == nil)
        }
        for cut in 0..<Self.event.utf8.count {
            _ = withFields(String(decoding: Array(Self.event.utf8).prefix(cut), as: UTF8.self)) { fields, _ in fields }
        }
    }

    @Test func serviceURLsParseAndHidePasswords() throws {
        let amqp = try #require(ServiceURL("amqp://guest:s%40cret@127.0.0.1:5672/%2F"))
        #expect(amqp.user == "guest" && amqp.password == "s@cret" && amqp.port == 5672 && amqp.path == "/")
        #expect(amqp.description == "amqp://guest:***@127.0.0.1:5672/%2F")
        let redis = try #require(ServiceURL("redis://:pw@[::1]:6380/2"))
        #expect(redis.host == "::1" && redis.port == 6380 && redis.path == "2" && redis.password == "pw")
        #expect(!redis.description.contains("pw"))
        #expect(ServiceURL("redis://host:99999") == nil)
        // an unencoded '/' in the password stays in the password (never in the logged host/path)
        let slash = try #require(ServiceURL("amqp://app:12/34s3cret@mq:5672/vh"))
        #expect(slash.host == "mq" && slash.password == "12/34s3cret" && slash.path == "vh")
        #expect(!slash.description.contains("s3cret"))
        #expect(ServiceURL("no scheme") == nil)
    }
}
