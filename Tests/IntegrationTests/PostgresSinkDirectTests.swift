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

    func sink(_ settings: String = "") throws -> PostgresSink {
        let parsed = try SinkFixture.parse("kind: postgres, url: \"\(target.url)\"\(settings)", retries: 0)
        guard let config = parsed.settings as? PostgresSinkConfig else { throw TestFailure("expected postgres") }
        return PostgresSink(
            config: config, pipe: "direct", sink: "replica",
            source: SinkSourceInfo(postgres: PostgresConfig(url: source.url), streamID: "slot:direct"),
            logger: InProcessPipe.testLogger)
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

    @Test func aValueTheTargetTypeRefusesIsDeadLetteredAndTheRestApplies() async throws {
        defer { cleanUp() }
        try target.sql("CREATE TABLE t (id int PRIMARY KEY, code varchar(3), u uuid)")
        let sink = try sink()
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
