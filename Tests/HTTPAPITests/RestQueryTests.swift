import Testing

@testable import HTTPAPI

@Suite("REST proxy query building")
struct RestQueryTests {
    let table = TableInfo(
        schema: "public", name: "readings",
        columns: [
            .init(name: "id", type: "integer"), .init(name: "device", type: "text"),
            .init(name: "temp", type: "double precision"), .init(name: "time", type: "timestamp with time zone"),
            .init(name: "we\"ird", type: "text"),
        ])

    func statement(_ query: String, timeBucket: Bool = false) throws -> SQLStatement {
        try RestQuery(pairs: RestQuery.pairs(query), table: table).selectStatement(table, timeBucket: timeBucket)
    }

    @Test func filtersOrderAndLimitBindEveryValue() throws {
        let sql = try statement(
            "select=id,temp&temp=gt.30&device=in.(a,%22b,c%22)&id=not.is.null&order=time.desc.nullslast&limit=10&offset=5"
        )
        #expect(
            sql.text
                == #"SELECT "id", "temp" FROM "public"."readings" WHERE "temp" > $1 AND "device" IN ($2, $3) AND NOT ("id" IS NULL) ORDER BY "time" DESC NULLS LAST LIMIT 10 OFFSET 5"#
        )
        #expect(sql.parameters == ["30", "a", "b,c"])
    }

    @Test func injectionAttemptsStayValuesOrAreRefused() throws {
        let sql = try statement("device=eq.x'%3B DROP TABLE readings%3B--&we%22ird=like.*o%22r*")
        #expect(sql.text == #"SELECT * FROM "public"."readings" WHERE "device" = $1 AND "we""ird"::text LIKE $2"#)
        #expect(sql.parameters == ["x'; DROP TABLE readings;--", "%o\"r%"])
        for bad in [
            "select=id;drop", "order=id;drop", "order=id.sideways", "limit=1;", "id%3Bdrop=eq.1", "agg=pg_sleep(id)",
            "id=eq", "id=is.42",
        ] {
            #expect(throws: RestQueryError.self, "\(bad)") { try statement(bad) }
        }
    }

    @Test func bucketsUseDateBinOrTimeBucket() throws {
        let plain = try statement("bucket=5m&agg=avg(temp),max(temp)&time_column=time&select=device")
        #expect(
            plain.text
                == #"SELECT date_bin($1::interval, "time", TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket, "device", avg("temp") AS "avg_temp", max("temp") AS "max_temp" FROM "public"."readings" GROUP BY 1, 2 ORDER BY "bucket" ASC"#
        )
        #expect(plain.parameters == ["5 minutes"])
        let timescale = try statement("bucket=1h&agg=count(*)&time_column=time&order=count.desc", timeBucket: true)
        #expect(timescale.text.hasSuffix(#"ORDER BY "count" DESC"#))
        #expect(timescale.text.hasPrefix(#"SELECT time_bucket($1::interval, "time") AS bucket, count(*) AS "count""#))
        #expect(throws: RestQueryError.self) { try statement("bucket=5m&agg=avg(temp)") }  // no time column
        #expect(throws: RestQueryError.self) { try statement("bucket=5m&agg=avg(temp)&time_column=device") }
    }

    @Test func writesTakeFiltersOnly() throws {
        #expect(throws: RestQueryError.self) {
            try RestQuery(pairs: [("select", "id")], table: table, allowShaping: false)
        }
        let query = try RestQuery(pairs: [("id", "eq.3")], table: table, allowShaping: false)
        let update = query.updateStatement(table, body: #"{"temp":1}"#, columns: ["temp"], returning: true)
        #expect(
            update.text.contains(
                #"SET "temp" = (SELECT "temp" FROM json_populate_record(NULL::"public"."readings", $1::json))"#))
        #expect(update.text.contains(#"WHERE "id" = $2 RETURNING "public"."readings".*"#))
        #expect(update.parameters == [#"{"temp":1}"#, "3"])
    }
}
