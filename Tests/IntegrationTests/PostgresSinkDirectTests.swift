import BridgeCore
import Foundation
import PostgresSink
import TestSupport
import Testing

/// The `postgres` sink driven directly with native events (no capture in between): the edges
/// of refusals, positions and unchanged TOAST columns, each with the events that reach them.
@Suite("PostgreSQL sink, driven directly", .enabled(if: TestEnvironment.hasPostgres))
struct PostgresSinkDirectTests {
    let source: TestDatabase
    let target: TestDatabase

    init() throws {
        source = try TestDatabase(prefix: "pgdirect_src")
        target = try TestDatabase(prefix: "pgdirect_dst")
    }

    func sink(_ settings: String = "", partEvents: Int = 8192) throws -> PostgresSink {
        let parsed = try SinkFixture.parse("kind: postgres, url: \"\(target.url)\"\(settings)", retries: 0)
        guard let config = parsed.settings as? PostgresSinkConfig else { throw TestFailure("expected postgres") }
        return PostgresSink(
            config: config, pipe: "direct", sink: "replica",
            source: SinkSourceInfo(postgres: PostgresConfig(url: source.url), streamID: "slot:direct"),
            logger: InProcessPipe.testLogger, partEvents: partEvents)
    }

    static func event(
        _ id: String, _ op: String, table: String = "t", key: String, before: String = "null", after: String = "null",
        capture: String = "replication", extra: String = ""
    ) -> String {
        let lsn = id.split(separator: ":")[0]
        return
            #"{"id":"\#(id)","op":"\#(op)","source":{"db":"d","schema":"public","table":"\#(table)","commit_lsn":"\#(lsn)","capture":"\#(capture)"},"key":\#(key),"before":\#(before),"after":\#(after)\#(extra)}"#
    }

    func cleanUp() {
        source.drop()
        target.drop()
    }

    /// With `copy_format: binary` too: the too-long text fails the binary COPY at the target, the
    /// malformed uuid already in pgbridge's binary writer (the part goes as text).
    @Test(arguments: ["", ", copy_format: binary"])
    func aValueTheTargetTypeRefusesIsDeadLetteredAndTheRestApplies(format: String) async throws {
        defer { cleanUp() }
        try target.sql("CREATE TABLE t (id int PRIMARY KEY, code varchar(3), u uuid)")
        let sink = try sink(format)
        try await sink.open()
        let result = try await sink.deliver([
            .fixture([
                Self.event("0/10:1", "insert", key: #"{"id":1}"#, after: #"{"id":1,"code":"abc"}"#),
                Self.event("0/10:2", "insert", key: #"{"id":2}"#, after: #"{"id":2,"code":"too long"}"#),
                Self.event("0/10:3", "insert", key: #"{"id":3}"#, after: #"{"id":3,"u":"not-a-uuid"}"#),
                Self.event("0/10:4", "insert", key: #"{"id":4}"#, after: #"{"id":4,"code":"ok"}"#),
            ])
        ])
        await sink.close()
        #expect(result.rejected.map(\.event) == [1, 2])
        #expect(result.rejected.first?.reason.contains("SQLSTATE 22001") == true, "\(result.rejected)")
        #expect(result.rejected.last?.reason.contains("SQLSTATE 22P02") == true, "\(result.rejected)")
        #expect(try target.sql("SELECT id FROM t ORDER BY id").map { $0[0] } == ["1", "4"])
    }

    @Test func aRefusedTruncateAndAChunkDropWithoutTimescaleDBAreDeadLettered() async throws {
        defer { cleanUp() }
        try target.sql(
            """
            CREATE TABLE t (id int PRIMARY KEY);
            CREATE TABLE child (id int PRIMARY KEY, t_id int REFERENCES t (id));
            INSERT INTO t VALUES (1);
            """)
        let sink = try sink(", on_chunk_dropped: drop")
        try await sink.open()
        let result = try await sink.deliver([
            .fixture([
                #"{"id":"0/10:1","op":"truncate","source":{"db":"d","schema":"public","table":"t","commit_lsn":"0/10"},"key":null,"before":null,"after":null,"truncate":{"cascade":false,"restart_identity":false}}"#,
                Self.event("0/10:2", "insert", key: #"{"id":2}"#, after: #"{"id":2}"#),
                #"{"id":"0/10:3","op":"chunk_dropped","source":{"db":"d","schema":"public","table":"t","commit_lsn":"0/10"},"key":null,"before":null,"after":null,"chunk":{"id":1,"range_start":"2026-01-01T00:00:00.000000Z","range_end":"2026-01-02T00:00:00.000000Z"}}"#,
            ])
        ])
        await sink.close()
        #expect(result.rejected.map(\.event) == [0, 2], "\(result.rejected)")
        #expect(result.rejected.first?.reason.contains("foreign key") == true, "\(result.rejected)")
        #expect(result.rejected.last?.reason.contains("drop_chunks") == true, "\(result.rejected)")
        #expect(try target.sql("SELECT id FROM t ORDER BY id").map { $0[0] } == ["1", "2"], "the insert applied")
    }

    /// A delivery of inserts only is copied straight into the table; when a key exists already
    /// (a snapshot row read again), the delivery is staged and upserted instead.
    @Test func insertsOfKeysThatExistBecomeUpserts() async throws {
        defer { cleanUp() }
        try target.sql("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (2, 0)")
        let sink = try sink()
        try await sink.open()
        let fresh = try await sink.deliver([
            .fixture([Self.event("0/10:1", "insert", key: #"{"id":1}"#, after: #"{"id":1,"v":1}"#)])
        ])
        let again = try await sink.deliver([
            .fixture([
                Self.event("0/11:1", "insert", key: #"{"id":2}"#, after: #"{"id":2,"v":2}"#),
                Self.event("0/11:2", "insert", key: #"{"id":3}"#, after: #"{"id":3,"v":3}"#),
            ])
        ])
        await sink.close()
        #expect(fresh.rejected.isEmpty && again.rejected.isEmpty)
        #expect(
            try target.sql("SELECT id, v FROM t ORDER BY id").map { $0.compactMap { $0 } } == [
                ["1", "1"], ["2", "2"], ["3", "3"],
            ])
    }

    /// A large delivery is applied in parts: plain inserts are copied part by part (each part's
    /// COPY stored while the next is planned); a part with a key the target has falls back to
    /// an upsert on its own; from the first update on, the rest is applied as one.
    @Test func aLargeDeliveryIsAppliedInPartsInOrder() async throws {
        defer { cleanUp() }
        try target.sql(
            "CREATE TABLE t (id int PRIMARY KEY, v text, CHECK (v NOT LIKE 'poison%')); INSERT INTO t VALUES (3000, 'old')"
        )
        let sink = try sink(partEvents: 2048)
        try await sink.open()
        // Batches of 700 events, parts of three batches: 1–2,100 are copied; 2,101–4,200 hold
        // 3,000, which exists, and are upserted; the seventh batch starts with an update of 10,
        // a delete of 11 and an insert the CHECK refuses, and is applied with the last batch.
        func insert(_ n: Int, _ value: String = "v") -> String {
            Self.event("0/\(n):1", "insert", key: #"{"id":\#(n)}"#, after: #"{"id":\#(n),"v":"\#(value)\#(n)"}"#)
        }
        var batches: [EventBatch] = []
        for first in stride(from: 1, through: 4901, by: 700) {
            var events = (first..<(first + 700)).map { insert($0) }
            if first == 4201 {
                events[0] = Self.event("0/4201:1", "update", key: #"{"id":10}"#, after: #"{"id":10,"v":"updated"}"#)
                events[1] = Self.event("0/4202:1", "delete", key: #"{"id":11}"#, before: #"{"id":11}"#)
                events[2] = insert(4203, "poison")
            }
            batches.append(.fixture(events))
        }
        let result = try await sink.deliver(batches)
        await sink.close()
        #expect(result.rejected.map { [$0.batch, $0.event] } == [[6, 2]], "\(result.rejected)")
        #expect(result.rejected.first?.reason.contains("SQLSTATE 23514") == true)
        let rows = try target.sql("SELECT count(*), max(id), min(id) FROM t")[0].compactMap { $0 }
        #expect(rows == ["5596", "5600", "1"], "5,600 ids less 11 and the three replaced")
        #expect(
            try target.sql("SELECT id, v FROM t WHERE id IN (10, 11, 2500, 3000, 4204) ORDER BY id").map {
                $0.compactMap { $0 }
            } == [["10", "updated"], ["2500", "v2500"], ["3000", "v3000"], ["4204", "v4204"]])
        let position = try target.sql("SELECT position FROM pgbridge.sink_positions WHERE pipe = 'direct'")
        #expect(position.first?.first == "0/5600:1", "the newest event's position")
    }

    /// A key change whose TOAST column is unchanged takes the old key's value, not that of an
    /// earlier, deleted row with the new key.
    @Test func unchangedToastAfterAKeyChangeComesFromTheOldKey() async throws {
        defer { cleanUp() }
        try target.sql("CREATE TABLE t (id int PRIMARY KEY, big text, v int); INSERT INTO t VALUES (1, 'old row', 0)")
        let sink = try sink()
        try await sink.open()
        let unchanged = #","unchanged_toast":["big"]"#
        let result = try await sink.deliver([
            .fixture([
                Self.event("0/10:1", "insert", key: #"{"id":2}"#, after: #"{"id":2,"big":"deleted row","v":1}"#),
                Self.event("0/10:2", "delete", key: #"{"id":2}"#, before: #"{"id":2}"#),
                Self.event(
                    "0/10:3", "update", key: #"{"id":2}"#, before: #"{"id":1}"#, after: #"{"id":2,"v":2}"#,
                    extra: unchanged),
            ])
        ])
        await sink.close()
        #expect(result.rejected.isEmpty)
        #expect(try target.sql("SELECT id, big, v FROM t").map { $0.compactMap { $0 } } == [["2", "old row", "2"]])
    }

    /// The recorded position is read again on a new connection (a commit whose answer was lost
    /// is not applied twice), and snapshot rows never move it.
    @Test func positionsAreReadAgainAfterAReconnectAndSnapshotsDoNotMoveThem() async throws {
        defer { cleanUp() }
        try target.sql("CREATE TABLE t (id int PRIMARY KEY, v int)")
        let sink = try sink()
        try await sink.open()
        _ = try await sink.deliver([
            .fixture([Self.event("0/10:1", "insert", key: #"{"id":1}"#, after: #"{"id":1,"v":1}"#)])
        ])
        // As if a later delivery committed but its answer was lost with the connection.
        try target.sql("UPDATE pgbridge.sink_positions SET position = '0/20:1'")
        try target.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgbridge direct.replica' AND datname = current_database()"
        )
        let again = [Self.event("0/20:1", "insert", key: #"{"id":2}"#, after: #"{"id":2,"v":2}"#)]
        // The first delivery after the kill may fail on the dead connection; the next one reconnects.
        _ = try? await sink.deliver([.fixture(again)])
        _ = try await sink.deliver([.fixture(again)])
        #expect(try target.value("SELECT count(*) FROM t WHERE id = 2") == "0", "0/20:1 counts as applied")
        _ = try await sink.deliver([
            .fixture([
                Self.event("0/FF:1", "read", key: #"{"id":3}"#, after: #"{"id":3,"v":3}"#, capture: "snapshot")
            ])
        ])
        #expect(try target.value("SELECT count(*) FROM t WHERE id = 3") == "1")
        #expect(try target.value("SELECT position FROM pgbridge.sink_positions") == "0/20:1", "a snapshot row")
        await sink.close()
    }
}
