import BridgeCore
import PostgresClient
import TestSupport
import Testing

@testable import PostgresSink

/// How a delivery is read into staged rows: positions skipped, key changes, unchanged TOAST
/// columns, truncates, and what cannot be applied.
@Suite struct DeliveryPlanTests {
    static let source =
        #""source":{"db":"app","schema":"public","table":"t","commit_lsn":"0/10","commit_time":"2026-12-01T00:00:00.000000Z"}"#

    static func event(
        _ id: String, _ op: String, key: String, before: String = "null", after: String, extra: String = ""
    )
        -> String
    {
        #"{"id":"\#(id)","op":"\#(op)",\#(source),"key":\#(key),"before":\#(before),"after":\#(after)\#(extra)}"#
    }

    static func plan(
        _ events: [String], mode: PostgresSinkConfig.Mode = .apply, applied: AppliedPositions = .init(),
        streams: AppliedStreams = .init()
    ) throws -> DeliveryPlan {
        var plan = DeliveryPlan(
            mode: mode, template: try NameTemplate("replica.{table}", pipe: "p"), defaultStream: "slot:s")
        var streams = streams
        if applied.position != nil { streams["slot:s"] = applied }
        plan.add([.fixture(events)], applied: streams)
        return plan
    }

    static func column(_ name: String, _ kind: TargetTable.Column.Kind = .plain) -> TargetTable.Column {
        TargetTable.Column(name: name, type: "text", kind: kind, stageType: "text")
    }

    /// The staged COPY rows of the plan's first table, fields split.
    static func rows(
        _ plan: DeliveryPlan, _ batches: [EventBatch], columns: [TargetTable.Column], refused: inout [Int]
    ) -> [[String]] {
        var copy = CopyText()
        let rows = StageRows(columns: columns, mode: plan.mode, work: plan.tables[0])
        refused =
            plan.mode == .apply
            ? rows.apply(plan.tables[0].staged[...], batches: batches, into: &copy)
            : rows.append(plan.tables[0].staged[...], batches: batches, flatten: false, into: &copy)
        return String(decoding: copy.bytes, as: UTF8.self).split(separator: "\n").map {
            $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        }
    }

    static func rows(_ plan: DeliveryPlan, _ batches: [EventBatch], columns: [TargetTable.Column]) -> [[String]] {
        var refused: [Int] = []
        return rows(plan, batches, columns: columns, refused: &refused)
    }

    @Test func stagesChangesWithTheirKeyColumnsAndColumns() throws {
        let events = [
            Self.event("0/10:1", "insert", key: #"{"id":1,"k":"a"}"#, after: #"{"id":1,"k":"a","v":"x\\y\tz"}"#),
            Self.event("0/10:2", "delete", key: #"{"id":2,"k":"b"}"#, after: "null"),
        ]
        let plan = try Self.plan(events)
        #expect(plan.tables.count == 1)
        let table = plan.tables[0]
        #expect(table.schema == "replica" && table.name == "t" && table.sourceTable == "t")
        #expect(table.keyColumns == ["id", "k"] && table.columns == ["id", "k", "v"])
        #expect(table.hasUpserts && table.hasDeletes && table.seqs == [0, 1] && !table.repeatsKeys)
        let rows = Self.rows(
            plan, [.fixture(events)], columns: [Self.column("id"), Self.column("k"), Self.column("v")])
        #expect(rows.count == 2 && rows[0].count == 7)
        #expect(rows[0] == ["0", "i", "0", #"\N"#, "1", "a", #"x\\y\tz"#], "JSON escapes become COPY escapes")
        #expect(rows[1] == ["1", "d", "0", #"\N"#, "2", "b", #"\N"#])
        #expect(plan.newest["slot:s"]?.description == "0/10:2")
    }

    @Test func valuesAreWrittenForTheTargetColumnsType() throws {
        let after =
            #"{"id":1,"b":"AAEC/w==","j":{"a":[1,"x"]},"arr":[1,null,[2]],"tags":["a\"b","c\\d"],"bins":["AAE="],"s":"\u00e9\ud83d\ude00\/"}"#
        let events = [Self.event("0/10:1", "insert", key: #"{"id":1}"#, after: after)]
        let plan = try Self.plan(events)
        let columns = [
            Self.column("id"), Self.column("b", .bytea), Self.column("j", .json),
            Self.column("arr", .array(element: .plain)), Self.column("tags", .array(element: .plain)),
            Self.column("bins", .array(element: .bytea)), Self.column("s"),
        ]
        let row = Self.rows(plan, [.fixture(events)], columns: columns)[0]
        #expect(row[5] == #"\\x000102ff"#, "bytea from base64, backslash escaped for COPY")
        #expect(row[6] == #"{"a":[1,"x"]}"#)
        #expect(row[7] == "{1,NULL,{2}}")
        #expect(row[8] == #"{"a\\"b","c\\\\d"}"#)
        #expect(row[9] == #"{"\\\\x0001"}"#)
        #expect(row[10] == "é😀/")
    }

    @Test func jsonArrayElementsOfAJSONArrayColumnStayJSON() throws {
        let events = [
            Self.event("0/10:1", "insert", key: #"{"id":1}"#, after: #"{"id":1,"docs":[[1,2],{"a":"b"},"s"]}"#)
        ]
        let plan = try Self.plan(events)
        let row = Self.rows(
            plan, [.fixture(events)], columns: [Self.column("id"), Self.column("docs", .array(element: .json))])[0]
        #expect(row[5] == #"{"[1,2]","{\\"a\\":\\"b\\"}","\\"s\\""}"#)
    }

    @Test func aColumnTheTargetLacksRefusesTheEvent() throws {
        let events = [
            Self.event("0/10:1", "insert", key: #"{"id":1}"#, after: #"{"id":1,"new":2}"#),
            Self.event("0/10:2", "insert", key: #"{"id":2}"#, after: #"{"id":2}"#),
        ]
        let plan = try Self.plan(events)
        var refused: [Int] = []
        let rows = Self.rows(plan, [.fixture(events)], columns: [Self.column("id")], refused: &refused)
        #expect(refused == [0] && rows.count == 1 && rows[0][4] == "2")
    }
    @Test func rowsAreSentInChunksThatAddUpToTheWholeCopy() throws {
        let events = (1...3000).map { n in
            Self.event(
                "0/10:\(n)", n % 7 == 0 ? "update" : "insert", key: #"{"id":\#(n)}"#,
                after: #"{"id":\#(n),"note":"row \#(n) with a tab\tand more text to fill the chunk"}"#)
        }
        let plan = try Self.plan(events)
        let columns = [Self.column("id"), Self.column("note")]
        let whole = Self.rows(plan, [.fixture(events)], columns: columns)
        let rows = StageRows(columns: columns, mode: .apply, work: plan.tables[0])
        var chunks: [[UInt8]] = []
        var copy = CopyText()
        let refused = rows.apply(plan.tables[0].staged[...], batches: [.fixture(events)], into: &copy) {
            chunks.append($0)
        }
        chunks.append(copy.bytes)
        #expect(refused.isEmpty && chunks.count > 2)
        #expect(chunks.dropLast().allSatisfy { $0.count >= StageRows.chunkSize && $0.last == 0x0A })
        let joined = String(decoding: chunks.joined(), as: UTF8.self).split(separator: "\n").map {
            $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        }
        #expect(joined == whole && whole.count == 3000)
        #expect(whole[6] == ["6", "u", "0", #"\N"#, "7", #"row 7 with a tab\tand more text to fill the chunk"#])
    }

    @Test func eventsAtOrBeforeTheRecordedPositionAreSkippedUnlessPending() throws {
        let applied = AppliedPositions(position: SinkPosition("0/10:2"), pending: ["0/10:1"])
        let plan = try Self.plan(
            [
                Self.event("0/10:1", "insert", key: #"{"id":1}"#, after: #"{"id":1}"#),
                Self.event("0/10:2", "insert", key: #"{"id":2}"#, after: #"{"id":2}"#),
                Self.event("0/11:1", "insert", key: #"{"id":3}"#, after: #"{"id":3}"#),
            ], applied: applied)
        #expect(plan.skipped == 1)
        #expect(plan.events.map(\.event) == [0, 2], "the pending event comes again; the applied one does not")
        #expect(plan.replayedPending == ["0/10:1"])
        #expect(plan.newest["slot:s"]?.description == "0/11:1")
    }

    /// Kafka message ids name their partition: each partition is a stream with its own
    /// position, an offset.
    @Test func kafkaPartitionsAreStreamsOfTheirOwn() throws {
        var streams = AppliedStreams()
        streams["kafka:readings:0"] = AppliedPositions(position: SinkPosition("5"), pending: ["kafka:readings:0:4"])
        let plan = try Self.plan(
            [
                Self.event("kafka:readings:0:4", "insert", key: #"{"id":4}"#, after: #"{"id":4}"#),
                Self.event("kafka:readings:0:5", "insert", key: #"{"id":5}"#, after: #"{"id":5}"#),
                Self.event("kafka:readings:0:6", "insert", key: #"{"id":6}"#, after: #"{"id":6}"#),
                Self.event("kafka:readings:1:2", "insert", key: #"{"id":7}"#, after: #"{"id":7}"#),
                Self.event("kafka:my:topic:1:9", "insert", key: #"{"id":8}"#, after: #"{"id":8}"#),
            ], streams: streams)
        #expect(plan.skipped == 1, "offset 5 of partition 0 was applied")
        #expect(plan.events.map(\.event) == [0, 2, 3, 4])
        #expect(plan.replayedPending == ["kafka:readings:0:4"])
        #expect(
            plan.newest.mapValues(\.description) == [
                "kafka:readings:0": "6", "kafka:readings:1": "2", "kafka:my:topic:1": "9",
            ])
        let twice = try Self.plan(
            [
                Self.event("kafka:readings:0:7", "insert", key: #"{"id":7}"#, after: #"{"id":7}"#),
                Self.event("kafka:readings:0:8", "insert", key: #"{"id":8}"#, after: #"{"id":8}"#),
                Self.event("kafka:readings:0:7", "insert", key: #"{"id":7}"#, after: #"{"id":7}"#),
            ], mode: .append)
        #expect(twice.duplicates == 1 && twice.events.map(\.event) == [0, 1], "a message read twice is applied once")
        #expect(DeliveryPlan.stream(ofID: "kafka:readings:1:2", default: "d") == "kafka:readings:1")
        #expect(DeliveryPlan.stream(ofID: "0/10:1", default: "d") == "d")
        #expect(SinkPosition("6")! > SinkPosition("5")! && SinkPosition("10")!.description == "10")
    }

    @Test func aKeyChangeStagesADeleteOfTheOldKey() throws {
        let events = [
            Self.event("0/10:1", "update", key: #"{"id":2}"#, before: #"{"id":1}"#, after: #"{"id":2,"v":1}"#),
            Self.event("0/10:2", "update", key: #"{"id":3}"#, before: #"{"id":3,"v":0}"#, after: #"{"id":3,"v":2}"#),
        ]
        let plan = try Self.plan(events)
        let rows = Self.rows(plan, [.fixture(events)], columns: [Self.column("id"), Self.column("v")])
        #expect(rows.map { $0[1] } == ["d", "u", "u"], "the second update kept its key")
        #expect(rows[0] == ["0", "d", "0", #"\N"#, "1", #"\N"#])
        #expect(plan.tables[0].hasDeletes && plan.tables[0].repeatsKeys)
    }

    @Test func unchangedToastColumnsGetASetIndex() throws {
        let unchanged = #","unchanged_toast":["doc"]"#
        let plan = try Self.plan([
            Self.event("0/10:1", "update", key: #"{"id":1}"#, after: #"{"id":1,"v":1}"#, extra: unchanged),
            Self.event("0/10:2", "update", key: #"{"id":2}"#, after: #"{"id":2,"v":1}"#, extra: unchanged),
            Self.event("0/10:3", "update", key: #"{"id":1}"#, after: #"{"id":1,"v":1,"doc":"d"}"#),
        ])
        #expect(plan.tables[0].unchangedSets == [["doc"]])
        #expect(plan.tables[0].staged.map(\.uset) == [1, 1, 0])
        #expect(plan.tables[0].repeatsKeys, "key 1 comes twice")
    }

    @Test func truncatesChunkDropsMessagesAndKeylessEvents() throws {
        let plan = try Self.plan([
            Self.event("0/10:1", "insert", key: #"{"id":1}"#, after: #"{"id":1}"#),
            #"{"id":"0/10:2","op":"truncate",\#(Self.source),"key":null,"before":null,"after":null,"truncate":{"cascade":true,"restart_identity":false}}"#,
            #"{"id":"0/10:3","op":"message","source":{"db":"app"},"key":null,"before":null,"after":{"prefix":"p"}}"#,
            #"{"id":"0/10:4","op":"chunk_dropped",\#(Self.source),"key":null,"before":null,"after":null,"chunk":{"id":1,"range_start":"2026-01-01T00:00:00.000000Z","range_end":"2026-01-02T00:00:00.000000Z"}}"#,
            Self.event("0/10:5", "insert", key: "null", after: #"{"id":9}"#),
        ])
        let table = plan.tables[0]
        #expect(table.truncate?.seq == 1 && table.truncate?.cascade == true && table.truncate?.restartIdentity == false)
        #expect(table.droppedChunks.first?.rangeEnd == "2026-01-02T00:00:00.000000Z")
        #expect(plan.messages == 1)
        #expect(plan.rejected.map(\.event) == [4] && plan.rejected[0].reason.contains("primary key"))
        #expect(table.staged.map(\.seq) == [0], "only the insert is staged")
    }

    @Test func appendStagesEveryEventWithItsMetadata() throws {
        let events = [
            Self.event("0/10:1", "update", key: #"{"id":1}"#, before: #"{"id":1,"v":0}"#, after: #"{"id":1,"v":1}"#)
        ]
        let plan = try Self.plan(events, mode: .append)
        let row = Self.rows(plan, [.fixture(events)], columns: [])[0]
        #expect(
            row == ["update", "0/10:1", "0/10", "2026-12-01T00:00:00.000000Z", #"{"id":1,"v":0}"#, #"{"id":1,"v":1}"#])
        #expect(plan.tables[0].columns == ["id", "v"])
    }
}

@Suite struct SinkPositionTests {
    @Test func parsesAndOrdersEventIDs() throws {
        let a = try #require(SinkPosition("0/1A2B3C4D:3"))
        let b = try #require(SinkPosition("0/1A2B3C4D:10"))
        let c = try #require(SinkPosition("1/0:1"))
        #expect(a < b && b < c && a.description == "0/1A2B3C4D:3")
        #expect(SinkPosition("outbox:17") == nil && SinkPosition("notify:1.2:3") == nil && SinkPosition("0/1:") == nil)
        #expect(SinkPosition("0/1:99999999999999999999") == nil, "overflow is not a position")
        #expect(SinkPosition("16/0B374D84:3")?.commitLSN == LSN("16/0B374D84"), "zero-padded halves, as LSN parses")
        #expect(SinkPosition("a/ff:0")?.commitLSN == LSN(0xA_0000_00FF))
        #expect(SinkPosition("0/1") == nil && SinkPosition("g/1:1") == nil && SinkPosition("123456789/0:1") == nil)
        #expect(SinkPosition("0/1:2:3") == nil && SinkPosition("/1:2") == nil)
    }

    @Test func pendingArraysRoundTrip() {
        let ids = ["0/1:2", #"a"b"#, #"c\d"#, "e,f"]
        #expect(SQL.parseTextArray(SQL.textArray(ids)) == ids)
        #expect(SQL.parseTextArray("{}") == [])
        #expect(SQL.parseTextArray("{0/1:2,0/1:3}") == ["0/1:2", "0/1:3"])
    }
}
