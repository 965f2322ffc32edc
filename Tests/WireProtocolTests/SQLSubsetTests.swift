import TestSupport
import Testing

@testable import WireProtocol

@Suite("SQL subset")
struct SQLSubsetTests {
    static func select(_ sql: String) throws -> SelectStatement {
        guard case .declareCursor(_, let select) = try #require(try SQLParser.parse(sql).first) else {
            guard case .select(let select) = try #require(try SQLParser.parse(sql).first) else {
                throw WireError.syntax("not a SELECT")
            }
            return select
        }
        return select
    }

    /// Statements exactly as postgres_fdw deparses them.
    @Test func parsesWhatPostgresFDWSends() throws {
        let scan = try Self.select(
            """
            DECLARE c1 CURSOR FOR
            SELECT partition, "offset", "timestamp", key, value, headers FROM kafka.events WHERE ((partition = ANY ('{0,1}'::integer[]))) AND (("offset" >= $1::bigint)) AND ((key ~~ 'dev-%'::text)) AND (((value ->> 'temp'::text))::numeric > 20::numeric) ORDER BY "offset" ASC NULLS LAST LIMIT 10::bigint
            """)
        #expect(scan.from == TableName(schema: "kafka", name: "events"))
        #expect(scan.targets.count == 6)
        #expect(scan.orderBy == [OrderTerm(expression: .column("offset"), descending: false, nullsFirst: false)])
        #expect(scan.limit == .cast(.constant(.int(10)), .int8))
        var terms: [SQLExpression] = []
        SelectExecution.conjuncts(try #require(scan.whereClause), into: &terms)
        #expect(terms.count == 4)
        #expect(
            terms[0]
                == .quantified("=", .column("partition"), all: false, .cast(.untypedString("{0,1}"), .array(.int4))))

        let statements = try SQLParser.parse(
            "ROLLBACK TO SAVEPOINT s2; RELEASE SAVEPOINT s2; START TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        #expect(statements == [.rollbackToSavepoint("s2"), .releaseSavepoint("s2"), .begin(tag: "START TRANSACTION")])
        #expect(try SQLParser.parse("FETCH 100 FROM c1") == [.fetch("c1", count: 100)])
        #expect(try SQLParser.parse("CLOSE c1") == [.closeCursor("c1")])
        #expect(try SQLParser.parse("SET extra_float_digits = 3") == [.set])
        guard
            case .insert(let insert) = try SQLParser.parse(
                "INSERT INTO kafka.events(partition, \"offset\", key) VALUES ($1, $2, $3), ($4, $5, $6) RETURNING \"offset\""
            ).first
        else {
            Issue.record("not an INSERT")
            return
        }
        #expect(insert.columns == ["partition", "offset", "key"] && insert.rows.count == 2)
        #expect(insert.returning.count == 1)
        let size = try Self.select("SELECT pg_catalog.pg_relation_size('kafka.events'::pg_catalog.regclass) / 8192")
        #expect(SelectExecution.relationSizeArguments(size) == ["kafka.events"])
    }

    @Test func evaluatesWithSQLNullSemantics() throws {
        let evaluator = SQLEvaluator(
            columns: ["a": 0, "b": 1, "doc": 2], columnTypes: [.int8, .text, .jsonb], parameters: [.text("5")])
        let row: [SQLValue] = [.int(7), .null, .json(JSONValue(parsing: "{\"t\": 21.5, \"tags\": [\"x\"]}")!)]
        func value(_ sql: String) throws -> SQLValue {
            var parser = try SQLParser(sql)
            return try evaluator.evaluate(try parser.expression(), row: row)
        }
        #expect(try value("a > $1::int") == .bool(true))
        #expect(try value("b = 'x'") == .null)
        #expect(try value("b = 'x' OR a = 7") == .bool(true))
        #expect(try value("b = 'x' AND a = 7") == .null)
        #expect(try value("NOT (b IS NULL)") == .bool(false))
        #expect(try value("a IN (1, 7)") == .bool(true))
        #expect(try value("a <> ALL ('{1,2}'::bigint[])") == .bool(true))
        #expect(try value("(doc ->> 't')::numeric >= 21.5") == .bool(true))
        #expect(try value("doc -> 'tags' ->> 0") == .text("x"))
        #expect(try value("doc @> '{\"tags\": [\"x\"]}'::jsonb") == .bool(true))
        #expect(try value("'dev-12' LIKE 'dev-_2'") == .bool(true))
        #expect(try value("'Dev' ILIKE 'd%'") == .bool(true))
        #expect(try value("'2026-11-21 10:00:00+02'::timestamptz = '2026-11-21T08:00:00Z'::timestamptz") == .bool(true))
        #expect(throws: WireError.self) { _ = try value("a / 0") }
    }

    func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return (error as? WireError)?.message
        }
    }

    @Test func refusesWhatItCannotEvaluate() throws {
        let evaluator = SQLEvaluator(columns: ["key": 0], columnTypes: [.text], parameters: [])
        for sql in ["md5(key) = 'x'", "key ~ '^a'", "nope = 1"] {
            var parser = try SQLParser(sql)
            let expression = try parser.expression()
            #expect(throws: WireError.self) { try evaluator.check(expression) }
        }
        #expect(throws: WireError.self) { _ = try SQLParser.parse("UPDATE kafka.events SET key = 'x'") }
        #expect(throws: WireError.self) {
            _ = try SQLParser.parse("SELECT a FROM (kafka.a r1 INNER JOIN kafka.b r2 ON (TRUE))")
        }
        #expect(throws: WireError.self) { _ = try SQLParser.parse("SELECT 'unterminated") }
        // The words of docs/troubleshooting.md.
        var function = try SQLParser("md5(key) = 'x'")
        #expect(
            message { try evaluator.check(try function.expression()) }
                == "pgbridge cannot evaluate the function md5() in a query on its tables")
        var regex = try SQLParser("key ~ '^a'")
        #expect(
            message { try evaluator.check(try regex.expression()) }
                == "pgbridge cannot evaluate the operator ~ in a query on its tables")
        #expect(
            message { _ = try SQLParser.parse("SELECT a FROM kafka.a, kafka.b") }
                == "joins are not evaluated by pgbridge")
    }

    @Test func jsonRoundTripsAndRejectsMalformedDocuments() {
        let document = JSONValue(parsing: #"{"a": [1, 2.5e3, -0.5], "b": "\u00e9\n", "c": null, "d": true}"#)
        #expect(document?["a"]?[1] == .number("2.5e3"))
        #expect(document?["b"] == .string("é\n"))
        #expect(document.map { JSONValue(parsing: $0.text) } == document)
        for bad in ["{", "[1,]", "01", "\"\\x\"", "{\"a\" 1}", "tru", String(repeating: "[", count: 600)] {
            #expect(JSONValue(parsing: bad) == nil, "\(bad.prefix(20))")
        }
    }

    @Test func timestampsParseAndPrintLikePostgreSQL() throws {
        #expect(SQLValue.formatTimestamp(0) == "1970-01-01 00:00:00+00")
        #expect(SQLValue.formatTimestamp(1_795_000_000_123_400) == "2026-11-18 11:06:40.1234+00")
        #expect(SQLValue.parseTimestamp("2026-11-18 11:06:40.1234+00") == 1_795_000_000_123_400)
        #expect(SQLValue.parseTimestamp("2026-11-18T12:36:40.1234+01:30") == 1_795_000_000_123_400)
        #expect(SQLValue.parseTimestamp("1969-12-31 23:59:59") == -1_000_000)
        #expect(SQLValue.parseTimestamp("2026-13-01") == nil)
    }
}

/// What a hostile or careless client can send must give an error, never a crash or a hang.
@Suite("SQL subset limits")
struct SQLSubsetLimitTests {
    static let catalog = MemoryCatalog(tables: [
        MemoryTable(
            schema: "t", name: "t", columns: [ForeignColumn("offset", .int8), ForeignColumn("key", .text)],
            rows: [[.int(1), .text("a")], [.int(2), .text("b")]])
    ])

    static func rows(_ sql: String) async throws -> [[SQLValue]] {
        guard case .select(let select) = try #require(try SQLParser.parse(sql).first) else { return [] }
        let execution = try await SelectExecution.start(select, catalog: Self.catalog, parameters: [])
        let rows = try await execution.fetch(nil)
        await execution.close()
        return rows
    }

    /// ORDER BY keeps every row: past the byte budget the query fails with 54000 and a hint,
    /// instead of holding whatever the table has.
    @Test func sortingIsBoundedByBytes() async throws {
        guard case .select(let select) = try #require(try SQLParser.parse("SELECT * FROM t.t ORDER BY key").first)
        else { throw WireError("XX000", "not a select") }
        do {
            _ = try await SelectExecution.start(select, catalog: Self.catalog, parameters: [], maxBytes: 64).fetch(nil)
            Issue.record("a sort over the byte budget succeeded")
        } catch let error as WireError {
            #expect(error.code == "54000" && error.message.contains("wire.max_scan_bytes"), "\(error)")
        }
        let enough = try await SelectExecution.start(select, catalog: Self.catalog, parameters: [], maxBytes: 4_096)
        #expect(try await enough.fetch(nil).count == 2)
    }

    @Test func deepOrLongExpressionsAreRefused() {
        for sql in [
            "SELECT " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000),
            "SELECT " + String(repeating: "NOT ", count: 100_000) + "true",
            "SELECT " + String(repeating: "- ", count: 100_000) + "1",
            "SELECT 1" + String(repeating: " + 1", count: 100_000),
        ] {
            #expect(throws: WireError.self) { _ = try SQLParser.parse(sql) }
        }
        #expect(throws: WireError.self) { _ = try SQLParser.parse("SELECT $40000") }
    }

    @Test func overflowingArithmeticIsAnError() async throws {
        for sql in [
            "SELECT -(-9223372036854775807 - 1)", "SELECT (-9223372036854775807 - 1) / -1",
            "SELECT abs(-9223372036854775807 - 1)", "SELECT 9223372036854775807 + 1",
            "SELECT '294250-01-01'::timestamptz",
        ] {
            await #expect(throws: WireError.self, "\(sql)") { _ = try await Self.rows(sql) }
        }
        #expect(try await Self.rows("SELECT (-9223372036854775807 - 1) % -1") == [[.int(0)]])
    }

    @Test func invalidClausesAreRefusedBeforeAnyRow() async throws {
        for sql in [
            "SELECT * FROM t.t LIMIT \"offset\"", "SELECT key, count(*) FROM t.t WHERE false",
            "SELECT count(*) FROM t.t ORDER BY key", "SELECT key::varchar(3) FROM t.t",
        ] {
            await #expect(throws: WireError.self, "\(sql)") { _ = try await Self.rows(sql) }
        }
        #expect(try await Self.rows("SELECT \"offset\" FROM t.t ORDER BY 1 LIMIT NULL OFFSET 1") == [[.int(2)]])
        #expect(
            try await Self.rows("SELECT key, count(*) FROM t.t GROUP BY 1 ORDER BY 1 DESC") == [
                [.text("b"), .int(1)], [.text("a"), .int(1)],
            ])
    }

    @Test func boundsNeverRoundAwayMatchingRows() async throws {
        let sql = "SELECT 1 FROM t.t WHERE \"offset\" > 1.5 AND \"offset\" <= 9223372036854775807 AND key >= 'b'"
        guard case .select(let select) = try #require(SQLParser.parse(sql).first) else {
            Issue.record("not a SELECT: \(sql)")
            return
        }
        let execution = try await SelectExecution.start(select, catalog: Self.catalog, parameters: [], scan: false)
        let bounds = execution.scanRequest().bounds
        #expect(bounds["offset"]?.lower == nil)
        #expect(bounds["offset"]?.upper == .int(Int64.max))
        #expect(bounds["key"]?.lower == .text("b"))
        #expect(try await Self.rows("SELECT \"offset\" FROM t.t WHERE \"offset\" > 1.5") == [[.int(2)]])
    }

    /// LIMIT reaches the table only when nothing needs every row first.
    @Test func rowLimitsArePushedOnlyWhenSafe() async throws {
        func rowLimit(_ sql: String) async throws -> Int? {
            guard case .select(let select) = try #require(SQLParser.parse(sql).first) else {
                Issue.record("not a SELECT: \(sql)")
                return nil
            }
            let execution = try await SelectExecution.start(select, catalog: Self.catalog, parameters: [], scan: false)
            return execution.scanRequest().rowLimit
        }
        #expect(try await rowLimit("SELECT * FROM t.t LIMIT 2") == 2)
        #expect(try await rowLimit("SELECT key FROM t.t LIMIT 2 OFFSET 3") == 5)
        #expect(try await rowLimit("SELECT * FROM t.t WHERE key = 'a' LIMIT 2") == nil)
        #expect(try await rowLimit("SELECT * FROM t.t ORDER BY 1 LIMIT 2") == nil)
        #expect(try await rowLimit("SELECT count(*) FROM t.t LIMIT 1") == nil)
        #expect(try await rowLimit("SELECT * FROM t.t") == nil)
    }

    /// Hostile patterns cost at most (text + 1) × (pattern + 1) steps, and with the pattern fixed
    /// the cost grows linearly with the text (a backtracking matcher grows exponentially).
    @Test func likeIsLinearOnHostilePatterns() {
        let hostile = ["%a%a%a%a%a%a%a%a%a%a%a%b", "%_%_%_%_%_%_%_%b", "a%a%a%a%a%a%a%a%a%a%a%a%c"]
        for pattern in hostile {
            var costs: [Int] = []
            for length in [1_000, 2_000, 4_000] {
                var steps = 0
                #expect(!LikePattern.matches(String(repeating: "a", count: length), pattern, steps: &steps))
                #expect(steps <= (length + 1) * (pattern.count + 1), "\(pattern) on \(length): \(steps) steps")
                costs.append(steps)
            }
            #expect(costs[1] <= costs[0] * 5 / 2 && costs[2] <= costs[1] * 5 / 2, "\(pattern): \(costs)")
        }
        #expect(LikePattern.matches("dev-12", "dev-%2"))
        #expect(LikePattern.matches("a%b", "a\\%b") && !LikePattern.matches("axb", "a\\%b"))
        #expect(LikePattern.matches("", "%") && !LikePattern.matches("", "_"))
    }
}
