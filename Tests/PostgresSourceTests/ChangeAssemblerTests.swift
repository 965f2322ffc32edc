import BridgeCore
import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

/// Feeds captured messages through the assembler and parses the JSON events it produces.
final class AssemblerHarness {
    let assembler: ChangeAssembler
    var handedOut: [EventBatch] = []
    let directory: String

    init(skipThrough: LSN = .zero, maxBatchBytes: Int = 1 << 20, messages: Bool = true) throws {
        directory = NSTemporaryDirectory() + "pgbridge-test-\(UUID().uuidString)"
        let spill = try StreamSpill(directory: directory)
        assembler = ChangeAssembler(
            encoder: NativeEncoder(database: "app"), spill: spill, skipThrough: skipThrough,
            messagesEnabled: messages, maxBatchBytes: maxBatchBytes)
        assembler.flushBatch = { [unowned self] in self.handOut() }
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func handOut() {
        handedOut.append(assembler.batch)
        assembler.batchWasHandedOut()
    }

    func feed(_ fixture: String) throws {
        for bytes in try Fixtures.messages(fixture) {
            try bytes.withUnsafeBytes { try assembler.handle($0, lsn: 0) }
        }
    }

    /// All events produced so far (handed out plus the current batch), parsed.
    func events() throws -> [[String: Any]] {
        let batches = handedOut + [assembler.batch]
        var result: [[String: Any]] = []
        for batch in batches {
            for index in 0..<batch.eventCount {
                let object = try JSONSerialization.jsonObject(with: Data(batch.event(at: index)))
                result.append(try #require(object as? [String: Any]))
            }
        }
        return result
    }

    var checkpoints: [LSN] { (handedOut + [assembler.batch]).compactMap(\.checkpoint) }
}

@Suite("Change assembly: transactions, streaming, dedupe")
struct ChangeAssemblerTests {
    @Test func crudEventsAndCheckpoints() throws {
        let h = try AssemblerHarness()
        try h.feed("basic_crud")
        let events = try h.events()
        #expect(
            events.map { $0["op"] as? String } == [
                "insert", "insert", "update", "update", "delete", "insert", "truncate", "truncate", "truncate",
            ])
        let first = events[0]
        #expect(first["id"] as? String == "0/192ADF0:0")
        #expect(events[1]["id"] as? String == "0/192ADF0:1")
        let source = try #require(first["source"] as? [String: Any])
        #expect(source["db"] as? String == "app")
        #expect(source["schema"] as? String == "public")
        #expect(source["table"] as? String == "items")
        #expect(source["commit_lsn"] as? String == "0/192ADF0")
        #expect(source["xid"] as? Int == 728)
        #expect(source["capture"] as? String == "replication")
        #expect(first["key"] as? [String: Int] == ["id": 1])
        #expect(first["before"] is NSNull)
        #expect((first["after"] as? [String: Any])?["name"] as? String == "apple")
        // key change: before holds the old key only, key is the new key
        let keyChange = events[3]
        #expect(keyChange["key"] as? [String: Int] == ["id": 10])
        #expect(keyChange["before"] as? [String: Int] == ["id": 1])
        // delete: key from the old key tuple, non-key columns are not reported as null
        let delete = events[4]
        #expect(delete["key"] as? [String: Int] == ["id": 2])
        #expect(delete["before"] as? [String: Int] == ["id": 2])
        #expect(delete["after"] is NSNull)
        let truncate = events[7]
        #expect((truncate["truncate"] as? [String: Bool]) == ["cascade": true, "restart_identity": true])
        #expect(h.assembler.batch.checkpoint == LSN(h.assembler.lastEmittedCheckpoint.value))
        #expect(h.assembler.isIdle == false)  // batch still holds events
    }

    @Test func fullIdentityReportsTheWholeOldRow() throws {
        let h = try AssemblerHarness()
        try h.feed("replica_identity_full")
        let events = try h.events()
        let update = events[3]
        #expect(update["before"] as? NSDictionary == ["id": 1, "name": "one", "qty": 1] as NSDictionary)
        #expect((update["after"] as? [String: Any])?["qty"] as? Int == 100)
        let withNull = try #require(events[4]["before"] as? [String: Any])
        #expect(withNull["name"] is NSNull)
        #expect(events[5]["op"] as? String == "delete")
        #expect(events[5]["before"] as? NSDictionary == ["id": 2, "name": "two", "qty": 2] as NSDictionary)
    }

    @Test func indexIdentityKeyIsTheIndexColumn() throws {
        let h = try AssemblerHarness()
        try h.feed("replica_identity_index")
        let events = try h.events()
        #expect(events[3]["key"] as? [String: String] == ["code": "A1-new"])
        #expect(events[3]["before"] as? [String: String] == ["code": "A1"])
        #expect(events[4]["key"] as? [String: String] == ["code": "B2"])
    }

    @Test func typeMatrixMapsToExpectedJSON() throws {
        let h = try AssemblerHarness()
        try h.feed("types")
        let events = try h.events()
        #expect(events.count == 4)
        let line = String(decoding: h.assembler.batch.event(at: 0), as: UTF8.self)
        // Exact text for the trickiest values (number forms and escapes as written).
        #expect(line.contains(#""c_numeric":"12345.6789000""#))
        #expect(line.contains(#""c_text":"tab:\t nl:\n quote:' dquote:\" backslash:\\ ctrl:\u0001 café 😀""#))
        #expect(line.contains(#""c_int8":-9223372036854775808"#))
        let row1 = try #require(events[0]["after"] as? [String: Any])
        #expect(row1["c_bool"] as? Bool == true)
        #expect(row1["c_int2"] as? Int == -32768)
        #expect(row1["c_int4"] as? Int == 2_147_483_647)
        #expect(row1["c_float4"] as? Double == 1.5)
        #expect(row1["c_float8"] as? Double == 1.5)
        #expect(row1["c_varchar"] as? String == "hello")
        #expect(row1["c_char"] as? String == "ab   ")
        #expect(row1["c_uuid"] as? String == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        #expect((row1["c_json"] as? [String: Any])?["a"] as? Int == 1)
        #expect((row1["c_jsonb"] as? [String: Any])?["a"] as? String == "x")
        #expect(row1["c_bytea"] as? String == "3q2+7w==")
        #expect(row1["c_date"] as? String == "2024-02-29")
        #expect(row1["c_time"] as? String == "13:45:30.123456")
        #expect(row1["c_timestamp"] as? String == "2024-02-29T13:45:30.123456")
        #expect(row1["c_timestamptz"] as? String == "2024-02-29T11:45:30.123456Z")
        #expect(row1["c_interval"] as? String == "1 year 2 mons 3 days 04:05:06.789")
        #expect(row1["c_int4arr"] as? [Int] == [1, 2, 3])
        let textArray = try #require(row1["c_textarr"] as? [Any])
        #expect(textArray.count == 4)
        #expect(textArray[0] as? String == "a")
        #expect(textArray[1] is NSNull)
        #expect(textArray[2] as? String == "with,comma")
        #expect(textArray[3] as? String == "with\"quote")
        #expect(row1["c_mood"] as? String == "happy")
        #expect(row1["c_posint"] as? String == "42")

        let row2 = try #require(events[1]["after"] as? [String: Any])
        #expect(row2["c_bool"] as? Bool == false)
        #expect(row2["c_float4"] as? String == "NaN")
        #expect(row2["c_float8"] as? String == "Infinity")
        #expect(row2["c_numeric"] as? String == "NaN")
        #expect(row2["c_text"] as? String == "")
        #expect(row2["c_bytea"] as? String == "")
        #expect(row2["c_date"] as? String == "-infinity")
        #expect(row2["c_timestamp"] as? String == "infinity")
        #expect(row2["c_timestamptz"] as? String == "1970-01-01T00:00:00.000000Z")
        #expect((row2["c_json"] as? [Any])?.isEmpty == true)
        #expect((row2["c_int4arr"] as? [Any])?.isEmpty == true)

        let row3 = try #require(events[2]["after"] as? [String: Any])
        #expect(row3["c_float4"] as? String == "-Infinity")
        #expect(row3["c_numeric"] as? String == "-0.000001")
        #expect(row3["c_int4arr"] as? [[Int]] == [[1, 2], [3, 4]])
        let emptyAndNull = try #require(row3["c_textarr"] as? [Any])
        #expect(emptyAndNull[0] as? String == "" && emptyAndNull[1] is NSNull)
        #expect(row3["c_text"] is NSNull)

        let row4 = try #require(events[3]["after"] as? [String: Any])
        #expect(row4.count == 24)
        let othersNull = row4.filter { $0.key != "id" }.allSatisfy { $0.value is NSNull }
        #expect(othersNull)
    }

    @Test func binaryValuesBecomeBase64() throws {
        let h = try AssemblerHarness()
        try h.feed("types_binary")
        let row1 = try #require(try h.events()[0]["after"] as? [String: Any])
        #expect(row1["id"] as? String == "AAAAAQ==")
    }

    @Test func unchangedToastIsListed() throws {
        let h = try AssemblerHarness()
        try h.feed("toast_unchanged")
        let events = try h.events()
        #expect(((events[0]["after"] as? [String: Any])?["payload"] as? String)?.count == 12800)
        let update = events[1]
        #expect(update["unchanged_toast"] as? [String] == ["payload"])
        let after = try #require(update["after"] as? [String: Any])
        #expect(after["payload"] == nil)
        #expect(after["note"] as? String == "second")
        #expect(events[0]["unchanged_toast"] == nil)
    }

    @Test func alterTableMidStream() throws {
        let h = try AssemblerHarness()
        try h.feed("alter_table")
        let events = try h.events()
        #expect((events[0]["after"] as? [String: Any])?.keys.sorted() == ["id", "name"])
        #expect(events[1]["after"] as? NSDictionary == ["id": 2, "name": "after", "extra": "extra!"] as NSDictionary)
    }

    @Test func logicalMessagesBecomeEvents() throws {
        let h = try AssemblerHarness()
        try h.feed("logical_message")
        let events = try h.events()
        #expect(events.map { $0["op"] as? String } == ["insert", "message", "message", "message"])
        let transactional = try #require(events[1]["after"] as? [String: Any])
        #expect(transactional["prefix"] as? String == "pgbridge")
        #expect(transactional["content"] as? String == "hello")
        #expect(transactional["transactional"] as? Bool == true)
        let binary = try #require(events[3]["after"] as? [String: Any])
        #expect(binary["content"] as? String == "\u{0}\u{FFFD}\u{1}")
        #expect(events[2]["id"] as? String == "0/3635FE8:0")
    }

    @Test func messagesCanBeTurnedOff() throws {
        let h = try AssemblerHarness(messages: false)
        try h.feed("logical_message")
        #expect(try h.events().map { $0["op"] as? String } == ["insert"])
    }

    @Test func streamedTransactionsCommitAbortAndSubAbort() throws {
        let h = try AssemblerHarness()
        try h.feed("streaming")
        let events = try h.events()
        let ids = events.compactMap { ($0["after"] as? [String: Any])?["id"] as? Int }
        // T1: 1..1000 committed; T2: 2001 and 2002 (subtransaction 3001.. rolled back); T3 aborted.
        #expect(ids == Array(1...1000) + [2001, 2002])
        let allBig = events.allSatisfy { ($0["source"] as? [String: Any])?["table"] as? String == "big" }
        #expect(allBig)
        #expect(events[0]["id"] as? String == "0/3A7F5D8:0")
        #expect(events[999]["id"] as? String == "0/3A7F5D8:999")
        #expect(events[1000]["id"] as? String == "0/3A90668:0")
        #expect(h.checkpoints.last == LSN("0/3A906A0"))
        #expect(h.assembler.spill.openTransactionCount == 0)
    }

    @Test func streamedTransactionSpillsWithSmallBatches() throws {
        let h = try AssemblerHarness(maxBatchBytes: 16 * 1024)
        try h.feed("streaming")
        #expect(h.handedOut.count >= 3)
        let ids = try h.events().compactMap { ($0["after"] as? [String: Any])?["id"] as? Int }
        #expect(ids == Array(1...1000) + [2001, 2002])
        // Batches handed out mid-transaction carry no checkpoint until the commit is reached.
        #expect(h.handedOut.first?.checkpoint == nil)
    }

    @Test func alreadyDeliveredTransactionsAreSkipped() throws {
        // Recorded position: end of the second transaction of basic_crud (xid 729).
        let messages = try Fixtures.messages("basic_crud")
        var decoder = PgOutputDecoder()
        var secondEnd = LSN.zero
        var commits = 0
        for bytes in messages {
            try bytes.withUnsafeBytes { raw in
                if case .commit(_, _, let end, _) = try decoder.decode(raw) {
                    commits += 1
                    if commits == 2 { secondEnd = end }
                }
            }
        }
        let h = try AssemblerHarness(skipThrough: secondEnd)
        try h.feed("basic_crud")
        let events = try h.events()
        // The two inserts and the first update were delivered before: not emitted again.
        #expect(
            events.map { $0["op"] as? String } == ["update", "delete", "insert", "truncate", "truncate", "truncate"])
        #expect(events[0]["key"] as? [String: Int] == ["id": 10])
    }

    @Test func skippedStreamedTransactionStillTeachesTheRelationCache() throws {
        // T1 (xid 789) was delivered before a restart: it is skipped, but its spilled Relation
        // message must still reach the decoder (the server will not send it again).
        let h = try AssemblerHarness(skipThrough: LSN("0/3A7F608")!)
        let messages = try Fixtures.messages("streaming")
        let firstCommit = try #require(messages.firstIndex { $0.first == UInt8(ascii: "c") })
        for bytes in messages[...firstCommit] {
            try bytes.withUnsafeBytes { try h.assembler.handle($0, lsn: 0) }
        }
        #expect(try h.events().isEmpty)
        #expect(h.assembler.decoder.relations[16503]?.table == "big")
        #expect(h.assembler.spill.openTransactionCount == 0)
    }

    @Test func resetDropsAnIncompleteTransaction() throws {
        let h = try AssemblerHarness()
        let messages = try Fixtures.messages("basic_crud")
        for bytes in messages[0..<4] {  // B R I I, no commit
            try bytes.withUnsafeBytes { try h.assembler.handle($0, lsn: 0) }
        }
        #expect(h.assembler.batch.eventCount == 2)
        h.assembler.reset()
        #expect(h.assembler.batch.eventCount == 0)
        #expect(h.assembler.isIdle)
        // The server resends from the start after a reconnect.
        try h.feed("basic_crud")
        #expect(try h.events().count == 9)
    }

    @Test func twoPhaseMessagesAreRefused() throws {
        let h = try AssemblerHarness()
        #expect(throws: PostgresError.self) { try h.feed("two_phase") }
    }
}
