import BridgeCore
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

    static func plan(_ events: [String], mode: PostgresSinkConfig.Mode = .apply, applied: AppliedPositions = .init())
        throws -> DeliveryPlan
    {
        var plan = DeliveryPlan(mode: mode, template: try NameTemplate("replica.{table}", pipe: "p"))
        plan.add([.fixture(events)], applied: applied)
        return plan
    }

    static func rows(_ plan: DeliveryPlan) -> [[String]] {
        String(decoding: plan.copy.bytes, as: UTF8.self).split(separator: "\n").map {
            $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        }
    }

    @Test func stagesChangesWithTheirKeyColumnsAndColumns() throws {
        let plan = try Self.plan([
            Self.event("0/10:1", "insert", key: #"{"id":1,"k":"a"}"#, after: #"{"id":1,"k":"a","v":"x\\y\tz"}"#),
            Self.event("0/10:2", "delete", key: #"{"id":2,"k":"b"}"#, after: "null"),
        ])
        #expect(plan.tables.count == 1)
        let table = plan.tables[0]
        #expect(table.schema == "replica" && table.name == "t" && table.sourceTable == "t")
        #expect(table.keyColumns == ["id", "k"] && table.columns == ["id", "k", "v"])
        #expect(table.hasUpserts && table.hasDeletes && table.seqs == [0, 1])
        let rows = Self.rows(plan)
        #expect(rows.count == 2 && rows[0].count == 11)
        #expect(rows[0][0] == "0" && rows[0][2] == "insert" && rows[0][3] == #"{"id":1,"k":"a"}"#)
        #expect(rows[0][5] == #"{"id":1,"k":"a","v":"x\\\\y\\tz"}"#, "backslashes doubled for COPY")
        #expect(rows[1][2] == "delete" && rows[1][5] == #"\N"#)
        #expect(plan.newest?.description == "0/10:2")
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
        #expect(plan.newest?.description == "0/11:1")
    }

    @Test func aKeyChangeStagesADeleteOfTheOldKey() throws {
        let plan = try Self.plan([
            Self.event("0/10:1", "update", key: #"{"id":2}"#, before: #"{"id":1}"#, after: #"{"id":2,"v":1}"#),
            Self.event("0/10:2", "update", key: #"{"id":3}"#, before: #"{"id":3,"v":0}"#, after: #"{"id":3,"v":2}"#),
        ])
        let rows = Self.rows(plan)
        #expect(rows.map { $0[2] } == ["delete", "update", "update"], "the second update kept its key")
        #expect(rows[0][0] == "0" && rows[0][3] == #"{"id":1}"# && rows[0][6] == "0")
        #expect(rows.allSatisfy { $0.count == 11 })
        #expect(plan.tables[0].hasDeletes)
    }

    @Test func unchangedToastColumnsGetASetIndex() throws {
        let unchanged = #","unchanged_toast":["doc"]"#
        let plan = try Self.plan([
            Self.event("0/10:1", "update", key: #"{"id":1}"#, after: #"{"id":1,"v":1}"#, extra: unchanged),
            Self.event("0/10:2", "update", key: #"{"id":2}"#, after: #"{"id":2,"v":1}"#, extra: unchanged),
            Self.event("0/10:3", "update", key: #"{"id":3}"#, after: #"{"id":3,"v":1,"doc":"d"}"#),
        ])
        #expect(plan.tables[0].unchangedSets == [["doc"]])
        #expect(Self.rows(plan).map { $0[6] } == ["1", "1", "0"])
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
        #expect(Self.rows(plan).count == 1, "only the insert is staged")
    }

    @Test func appendStagesEveryEventWithItsMetadata() throws {
        let plan = try Self.plan(
            [Self.event("0/10:1", "update", key: #"{"id":1}"#, before: #"{"id":1,"v":0}"#, after: #"{"id":1,"v":1}"#)],
            mode: .append)
        let row = Self.rows(plan)[0]
        #expect(row[2] == "update" && row[4] == #"{"id":1,"v":0}"# && row[5] == #"{"id":1,"v":1}"#)
        #expect(row[8] == "0/10:1" && row[9] == "0/10" && row[10] == "2026-12-01T00:00:00.000000Z")
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
    }

    @Test func pendingArraysRoundTrip() {
        let ids = ["0/1:2", #"a"b"#, #"c\d"#, "e,f"]
        #expect(PostgresArray.parse(PostgresArray.literal(ids)) == ids)
        #expect(PostgresArray.parse("{}") == [])
        #expect(PostgresArray.parse("{0/1:2,0/1:3}") == ["0/1:2", "0/1:3"])
    }
}
