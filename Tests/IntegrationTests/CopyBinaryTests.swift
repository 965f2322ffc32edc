import BridgeCore
import PostgresClient
import TestSupport
import Testing

@testable import PostgresSink

/// The `postgres` sink's binary COPY against a real server: the same events stored through
/// binary COPY and through text COPY (where PostgreSQL's own input functions read the values)
/// give the same rows, for every type the binary writer takes, a domain over text included.
@Suite("Binary COPY into PostgreSQL", .enabled(if: TestEnvironment.hasPostgres))
struct CopyBinaryTests {
    static let columns = """
        id int8 PRIMARY KEY, small int2, medium int4, single float4, double float8, flag bool, body text,
        code varchar(12), padded char(4), doc json, docb jsonb, at timestamptz, local timestamp, u uuid,
        tag label
        """

    static func event(_ id: Int, _ after: String) -> String {
        #"{"id":"0/10:\#(id)","op":"insert","source":{"schema":"public","table":"t"},"key":{"id":\#(id)},"after":{"id":\#(id),\#(after)}}"#
    }

    static let events = [
        event(
            1,
            #""small":-32768,"medium":-2147483648,"single":3.4028235e38,"double":-1.7976931348623157e308,"flag":true,"body":"tab\there \"quoted\" back\\slash \u00e9 \ud83d\ude00","code":"abc","padded":"ab","doc":{"a":[1,2.5,"x"]},"docb":{"b":null,"a":1},"at":"2024-02-29T23:59:59.999999Z","local":"0001-01-01T00:00:00","u":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11","tag":"first""#
        ),
        event(
            2,
            #""small":32767,"medium":2147483647,"single":-0.0,"double":0.1,"flag":false,"body":"","code":"","padded":"abcd","doc":"just a string","docb":[1,{"x":"y"}],"at":"1999-12-31T19:00:00-05:00","local":"9999-12-31T23:59:59.5","u":"00000000-0000-0000-0000-000000000000","tag":"x""#
        ),
        event(
            3,
            #""small":null,"medium":0,"single":1e-30,"double":-0,"flag":null,"body":"line\nbreak\r\n","doc":null,"docb":"text","at":"2026-12-06T10:00:00+05:30:15","local":"2000-01-01 00:00:00","tag":null"#
        ),
        event(4, #""double":9007199254740993,"at":"1970-01-01T00:00:00.1+00","body":12.50"#),
    ]

    @Test func binaryAndTextCopiesStoreTheSameRows() throws {
        let database = try TestDatabase(prefix: "copybinary")
        defer { database.drop() }
        try database.sql("CREATE DOMAIN label AS varchar(20) CHECK (VALUE <> '')")
        try database.sql("CREATE DOMAIN positive_int AS int4 CHECK (VALUE > 0)")
        try database.sql("CREATE DOMAIN document AS jsonb")
        try database.sql("CREATE TABLE others (n positive_int, d document)")
        try database.sql("CREATE TABLE t (\(Self.columns))")
        try database.sql("CREATE TABLE t_text (\(Self.columns))")
        let sql = SQLConnection(connection: try PGConnection(url: database.url, mode: .normal))
        guard let target = try TargetTable.load(schema: "public", name: "t", sql) else {
            throw TestFailure("table t not found")
        }
        #expect(target.column("tag")?.binary == .text, "a domain over text is written as text")
        // Sources send other domains' values as JSON strings ("7", "{\"a\":1}"): only the text
        // input reads them as the base type.
        let others = try #require(try TargetTable.load(schema: "public", name: "others", sql))
        #expect(others.columns.map(\.binary) == [nil, nil])

        var plan = DeliveryPlan(mode: .apply, template: try NameTemplate("{schema}.{table}", pipe: "p"))
        let batches = [EventBatch.fixture(Self.events)]
        plan.add(batches, applied: AppliedStreams())
        let work = plan.tables[0]
        let rows = StageRows(columns: work.columns.compactMap { target.column($0) }, mode: .apply, work: work)
        let names = rows.columns.map { SQL.identifier($0.name) }
        let kinds = try #require(rows.binaryKinds, "every column has a binary form")

        var binary: [UInt8] = []
        let refused = try rows.binaryRows(work.staged[...], kinds: kinds, batches: batches, chunkSize: 64) {
            binary.append(contentsOf: $0)
        }
        #expect(refused.isEmpty)
        try sql.connection.copyIn(ApplyStatements.copy(into: "t", columns: names, binary: true), data: binary)
        var text = CopyText()
        _ = rows.apply(work.staged[...], batches: batches, into: &text, columnsOnly: true)
        try sql.connection.copyIn(ApplyStatements.copy(into: "t_text", columns: names), data: text.bytes)

        #expect(try database.value("SELECT count(*) FROM t") == "4")
        let difference = try database.sql(
            "(SELECT b::text FROM t b EXCEPT SELECT x::text FROM t_text x) UNION ALL "
                + "(SELECT x::text FROM t_text x EXCEPT SELECT b::text FROM t b)")
        #expect(difference.isEmpty, "rows that differ: \(difference)")
        // Spot checks that the comparison compares something.
        #expect(try database.value("SELECT at FROM t WHERE id = 2")?.hasPrefix("2000-01-01 00:00:00") == true)
        #expect(try database.value("SELECT body FROM t WHERE id = 4") == "12.50")
        #expect(
            try database.value("SELECT float8send(double) = float8send(9007199254740992) FROM t WHERE id = 4") == "t")
    }

    @Test func valuesOnlyTheTextInputReadsAreRefusedByTheBinaryWriter() throws {
        let database = try TestDatabase(prefix: "copybinary")
        defer { database.drop() }
        try database.sql("CREATE TABLE t (id int8 PRIMARY KEY, double float8, at timestamptz, small int2)")
        let sql = SQLConnection(connection: try PGConnection(url: database.url, mode: .normal))
        let target = try #require(try TargetTable.load(schema: "public", name: "t", sql))
        for after in [
            #""double":"NaN""#, #""at":"2024-01-01T00:00:00""#, #""at":"2024-01-01 00:00:00 BC""#,
            #""small":40000"#, #""small":"12""#, #""double":1e999"#,
        ] {
            var plan = DeliveryPlan(mode: .apply, template: try NameTemplate("{schema}.{table}", pipe: "p"))
            let batches = [EventBatch.fixture([Self.event(1, after)])]
            plan.add(batches, applied: AppliedStreams())
            let work = plan.tables[0]
            let rows = StageRows(columns: work.columns.compactMap { target.column($0) }, mode: .apply, work: work)
            let kinds = try #require(rows.binaryKinds)
            #expect(throws: CopyBinary.Unconvertible.self, "\(after)") {
                _ = try rows.binaryRows(work.staged[...], kinds: kinds, batches: batches) { _ in }
            }
        }
    }
}
