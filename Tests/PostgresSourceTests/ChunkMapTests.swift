import BridgeCore
import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

@Suite("TimescaleDB chunk map")
struct ChunkMapTests {
    @Test func chunkNamesGiveHypertableAndChunkIDs() {
        #expect(ChunkMap.ids(fromChunkName: "_hyper_4_7_chunk")! == (4, 7))
        #expect(ChunkMap.ids(fromChunkName: "_hyper_12_345_chunk")! == (12, 345))
        for name in [
            "_hyper_4_chunk", "hyper_4_7_chunk", "_hyper_4_7_chunk_x", "_hyper_a_7_chunk", "compress_hyper_2_5_chunk",
            "_hyper_4_7_8_chunk", "_materialized_hypertable_2",
        ] {
            #expect(ChunkMap.ids(fromChunkName: name) == nil, "\(name)")
        }
    }

    func map() -> ChunkMap {
        var map = ChunkMap(capturedHypertableNames: ["public.conditions"])
        map.learn(hypertables: [
            .init(id: 1, schema: "public", name: "conditions"), .init(id: 2, schema: "public", name: "other"),
        ])
        return map
    }

    @Test func chunksOfCapturedHypertablesAreReportedAndOthersProvablyNot() throws {
        var map = map()
        map.learn(.init(id: 7, hypertableID: 1, schema: "_timescaledb_internal", name: "_hyper_1_7_chunk"))
        map.learn(.init(id: 8, hypertableID: 2, schema: "_timescaledb_internal", name: "_hyper_2_8_chunk"))
        map.learn(.init(id: 9, hypertableID: 3, schema: "_timescaledb_internal", name: "_hyper_3_9_chunk"))
        let captured = try #require(map.chunk(schema: "_timescaledb_internal", name: "_hyper_1_7_chunk"))
        #expect(map.isCaptured(captured) == true)
        #expect(map.isCaptured(try #require(map.chunk(id: 8))) == false)
        #expect(map.isCaptured(try #require(map.chunk(id: 9))) == nil)  // hypertable unknown: not provable
        #expect(map.record(chunkID: 7)?.hypertable.name == "conditions")
        #expect(map.record(chunkID: 7)?.chunk.display == "_timescaledb_internal._hyper_1_7_chunk")
        #expect(map.record(chunkID: 8) == nil)
    }

    @Test func anUpdateKeepsTheRangeAndARenameMovesTheName() {
        var map = map()
        map.learn(.init(id: 7, hypertableID: 1, schema: "s", name: "pending"))
        map.setRange(chunkID: 7, start: "a", end: "b")
        map.learn(.init(id: 7, hypertableID: 1, schema: "s", name: "_hyper_1_7_chunk"))
        #expect(map.chunk(schema: "s", name: "pending") == nil)
        #expect(map.chunk(schema: "s", name: "_hyper_1_7_chunk")?.rangeStart == "a")
        #expect(map.record(chunkID: 7)?.chunk.rangeEnd == "b")
    }

    @Test func droppedChunksAreForgottenOnlyOnceTheDropIsConfirmed() {
        var map = map()
        map.learn(.init(id: 7, hypertableID: 1, schema: "s", name: "c7"))
        map.markDropped(chunkID: 7, at: LSN(100))
        let early = map.forgetDropped(confirmedThrough: LSN(99))
        #expect(!early)
        #expect(map.record(chunkID: 7) != nil)  // a replay of the drop still reports it
        let confirmed = map.forgetDropped(confirmedThrough: LSN(100))
        #expect(confirmed)
        #expect(map.chunk(id: 7) == nil && map.chunk(schema: "s", name: "c7") == nil && map.chunkCount == 0)
    }

    /// Retention that creates and drops 10,000 chunks: the map holds only the live ones once
    /// the drops are confirmed, however long the pipe runs.
    @Test func tenThousandChunksCreatedAndDroppedLeaveTheMapSmall() {
        var map = map()
        for id in Int64(1)...10_000 {
            map.learn(.init(id: id, hypertableID: 1, schema: "_timescaledb_internal", name: "_hyper_1_\(id)_chunk"))
            if id > 10 {
                // Retention keeps the newest ten chunks.
                map.markDropped(chunkID: id - 10, at: LSN(UInt64(id)))
                _ = map.forgetDropped(confirmedThrough: LSN(UInt64(id)))
            }
            #expect(map.chunkCount <= 11)
        }
        #expect(map.chunkCount == 10)
        #expect(map.chunk(schema: "_timescaledb_internal", name: "_hyper_1_1_chunk") == nil)
    }

    @Test func theMapSurvivesARestart() throws {
        let directory = NSTemporaryDirectory() + "pgbridge-chunkmap-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ChunkMapStore(directory: directory, pipe: "p")
        var map = map()
        map.learn(.init(id: 7, hypertableID: 1, schema: "s", name: "c7", rangeStart: "a", rangeEnd: nil))
        map.markDropped(chunkID: 7, at: LSN(5))
        try store.save(map)
        var loaded = ChunkMap(capturedHypertableNames: ["public.conditions"])
        try store.load(into: &loaded)
        #expect(loaded == map)
        try "{".write(toFile: store.path, atomically: true, encoding: .utf8)
        #expect(throws: PostgresError.self) { try store.load(into: &loaded) }
    }

    @Test func catalogRowsAreParsedFromEitherCatalogShape() {
        #expect(
            TimescaleCatalogRow.qualifiedName("_timescaledb_internal._hyper_1_2_chunk")! == (
                "_timescaledb_internal", "_hyper_1_2_chunk"
            ))
        #expect(TimescaleCatalogRow.qualifiedName("\"My.Schema\".\"a\"\"b\"")! == ("My.Schema", "a\"b"))
        #expect(TimescaleCatalogRow.qualifiedName("unqualified") == nil)
    }

    @Test func sliceBoundsBecomeRFC3339OrIntegersOrOpen() {
        #expect(ReplicationStream.rangeText(1_767_225_600_000_000, isTime: true) == "2026-01-01T00:00:00.000000Z")
        #expect(ReplicationStream.rangeText(42, isTime: false) == "42")
        #expect(ReplicationStream.rangeText(.min, isTime: true) == nil)
        #expect(ReplicationStream.rangeText(.max, isTime: false) == nil)
    }
}

@Suite("START_REPLICATION errors by SQLSTATE")
struct StartErrorClassificationTests {
    func state(active: Int? = nil, walStatus: String? = "reserved") -> CaptureCatalog.SlotState {
        .init(
            name: "s", plugin: "pgoutput", database: "app", active: active != nil, activePID: active,
            confirmedFlush: nil, walStatus: walStatus)
    }

    /// Messages in another language (lc_messages) must classify the same way.
    @Test func classificationUsesSQLStateAndSlotStateOnly() {
        let busy = ReplicationStream.classifyStartError(
            PostgresError(.queryFailed, "Replikations-Slot »s« ist aktiv", sqlState: "55006"), slot: "s",
            state: state(active: 4242))
        #expect(busy.code == .slotBusy && busy.message.contains("PID 4242"))
        let lost = ReplicationStream.classifyStartError(
            PostgresError(.queryFailed, "kann keine Änderungen mehr lesen", sqlState: "55000"), slot: "s",
            state: state(walStatus: "lost"))
        #expect(lost.code == .slotInvalidated && !lost.isRetriable)
        let other55000 = ReplicationStream.classifyStartError(
            PostgresError(.queryFailed, "can no longer get changes", sqlState: "55000"), slot: "s", state: state())
        #expect(other55000.code == .queryFailed)
        let missing = ReplicationStream.classifyStartError(
            PostgresError(.queryFailed, "existiert nicht", sqlState: "42704"), slot: "s", state: nil)
        #expect(missing.code == .slotMissing && missing.message.contains("does not exist any more"))
        let shutdown = ReplicationStream.classifyStartError(
            PostgresError(.queryFailed, "Abbruch", sqlState: "57P01"), slot: "s", state: nil)
        #expect(shutdown.isRetriable)
    }
}
