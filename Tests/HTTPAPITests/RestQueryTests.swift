import Testing

@testable import HTTPAPI

@Suite("REST proxy query building")
struct RestQueryTests {
    let table = TableInfo(
        schema: "public", name: "readings",
        columns: [
            .init(name: "id", type: "integer"), .init(name: "device", type: "text"),
            .init(name: "temp", type: "double precision"), .init(name: "time", type: "timestamp with time zone"),
            .init(name: "we\"ird", type: "text"), .init(name: "data", type: "jsonb"),
            .init(name: "doc", type: "tsvector"), .init(name: "tags", type: "text[]"),
        ],
        primaryKey: ["id"])

    func query(_ text: String, forWrite: Bool = false) throws -> RestQuery {
        try RestQuery(pairs: RestQuery.pairs(text), table: table, forWrite: forWrite)
    }

    func statement(_ text: String, timeBucket: Bool = false) throws -> SQLStatement {
        try query(text).selectStatement(table, timeBucket: timeBucket)
    }

    func whereSQL(_ text: String) throws -> SQLStatement {
        var parameters: [String?] = []
        let query = try query(text)
        let sql = RestQuery.whereClause(query.root, &parameters, qualifier: nil, table: table)
        return SQLStatement(text: sql, parameters: parameters)
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

    @Test func everyOperatorHasItsSQL() throws {
        let cases: [(String, String, [String?])] = [
            ("id=neq.1", #""id" <> $1"#, ["1"]),
            ("id=gte.1", #""id" >= $1"#, ["1"]),
            ("id=lte.1", #""id" <= $1"#, ["1"]),
            ("device=ilike.*A*", #""device"::text ILIKE $1"#, ["%A%"]),
            ("device=match.^d", #""device"::text ~ $1"#, ["^d"]),
            ("device=imatch.^D", #""device"::text ~* $1"#, ["^D"]),
            ("device=like(any).{a*,b*}", #""device"::text LIKE ANY($1::text[])"#, ["{a%,b%}"]),
            ("id=gt(all).{1,2}", #""id" > ALL($1)"#, ["{1,2}"]),
            ("id=is.not_null", #""id" IS NOT NULL"#, []),
            ("id=isdistinct.3", #""id" IS DISTINCT FROM $1"#, ["3"]),
            ("doc=fts(english).cat", #""doc" @@ to_tsquery($1::regconfig, $2)"#, ["english", "cat"]),
            ("device=plfts.a cat", #"to_tsvector("device"::text) @@ plainto_tsquery($1)"#, ["a cat"]),
            ("device=phfts.a cat", #"to_tsvector("device"::text) @@ phraseto_tsquery($1)"#, ["a cat"]),
            ("device=wfts.a or cat", #"to_tsvector("device"::text) @@ websearch_to_tsquery($1)"#, ["a or cat"]),
            ("tags=cs.{a,b}", #""tags" @> $1"#, ["{a,b}"]),
            ("tags=cd.{a,b}", #""tags" <@ $1"#, ["{a,b}"]),
            ("tags=ov.{a,b}", #""tags" && $1"#, ["{a,b}"]),
            ("id=sl.(1,5)", #""id" << $1"#, ["(1,5)"]),
            ("id=sr.(1,5)", #""id" >> $1"#, ["(1,5)"]),
            ("id=nxr.(1,5)", #""id" &< $1"#, ["(1,5)"]),
            ("id=nxl.(1,5)", #""id" &> $1"#, ["(1,5)"]),
            ("id=adj.(1,5)", #""id" -|- $1"#, ["(1,5)"]),
            ("data->>a=eq.x", #""data"->>'a' = $1"#, ["x"]),
            ("data->b->0=eq.1", #""data"->'b'->0 = $1"#, ["1"]),
            ("data->>%22it's%22=eq.1", #""data"->>$1::text = $2"#, ["it's", "1"]),
        ]
        for (text, expected, parameters) in cases {
            let sql = try whereSQL(text)
            #expect(sql.text == " WHERE " + expected, "\(text)")
            #expect(sql.parameters == parameters, "\(text)")
        }
    }

    @Test func logicTreesNestAndNegate() throws {
        let sql = try whereSQL(
            "or=(id.lt.3,and(device.eq.%22a,b%22,temp.gt.5),not.and(id.eq.9,id.in.(1,2)))&not.or=(id.eq.4)")
        #expect(
            sql.text
                == #" WHERE ("id" < $1 OR ("device" = $2 AND "temp" > $3) OR NOT ("id" = $4 AND "id" IN ($5, $6))) AND NOT ("id" = $7)"#
        )
        #expect(sql.parameters == ["3", "a,b", "5", "9", "1", "2", "4"])
        for bad in ["or=(id.eq.1", "or=id.eq.1", "or=(nope.eq.1)", "or=(id.zz.1)", "and=()"] {
            #expect(throws: RestError.self, "\(bad)") { try query(bad) }
        }
    }

    @Test func selectTakesAliasesCastsAndJSONPaths() throws {
        let sql = try statement("select=key:id,temp::text,data->a->>b,label:data->>c::int,*")
        #expect(
            sql.text
                == #"SELECT "public"."readings".*, "id" AS "key", ("temp")::text AS "temp", "data"->'a'->>'b' AS "b", ("data"->>'c')::int AS "label" FROM "public"."readings""#
        )
        #expect(sql.parameters == [])
        let ordered = try statement("order=data->>a.desc,id")
        #expect(ordered.text.hasSuffix(#"ORDER BY "data"->>'a' DESC, "id" ASC"#))
        for bad in ["select=id::text;drop", "select=id::int or 1=1", "select=nope", "select=id,", "select=((id"] {
            #expect(throws: RestError.self, "\(bad)") { try statement(bad) }
        }
    }

    @Test func aggregatesGroupByTheOtherColumns() throws {
        let sql = try statement("select=device,temp.avg(),n:count(),top:temp.max()::int")
        #expect(
            sql.text
                == #"SELECT "device", avg("temp") AS "avg", count(*) AS "n", (max("temp"))::int AS "top" FROM "public"."readings" GROUP BY 1"#
        )
        #expect(throws: RestError.self) { try statement("select=*,count()") }
    }

    @Test func injectionAttemptsStayValuesOrAreRefused() throws {
        let sql = try statement("device=eq.x'%3B DROP TABLE readings%3B--&%22we%22%22ird%22=like.*o%22r*")
        #expect(sql.text == #"SELECT * FROM "public"."readings" WHERE "device" = $1 AND "we""ird"::text LIKE $2"#)
        #expect(sql.parameters == ["x'; DROP TABLE readings;--", "%o\"r%"])
        for bad in [
            "select=id;drop", "order=id;drop", "order=id.sideways", "limit=1;", "id%3Bdrop=eq.1", "agg=pg_sleep(id)",
            "id=eq", "id=is.42", "id=like(sometimes).{a}", "doc=fts(eng;lish).x",
        ] {
            #expect(throws: RestError.self, "\(bad)") { try statement(bad) }
        }
    }

    @Test func rangesNarrowLimitAndOffset() throws {
        let plain = try query("limit=10&offset=5")
        #expect(plain.page(range: nil) == .init(offset: 5, limit: 10))
        #expect(plain.page(range: (0, 3)) == .init(offset: 5, limit: 0))
        #expect(plain.page(range: (6, 100)) == .init(offset: 6, limit: 9))
        #expect(try query("").page(range: (10, nil)) == .init(offset: 10, limit: nil))
        #expect(try query("").page(range: (10, 19)) == .init(offset: 10, limit: 10))
        #expect(try TableRoutes.range("0-9")! == (0, 9))
        #expect(try TableRoutes.range("5-")! == (5, nil))
        #expect(throws: RestError.self) { try TableRoutes.range("9-1") }
        #expect(TableRoutes.contentRange(offset: 0, rows: 10, total: 55) == "0-9/55")
        #expect(TableRoutes.contentRange(offset: 3, rows: 0, total: nil) == "*/*")
    }

    @Test func hostileInputIsBoundedAndNeverSpliced() throws {
        #expect(throws: RestError.self) { try TableRoutes.range("0-9223372036854775807") }
        #expect(throws: RestError.self) { try TableRoutes.range("9223372036854775807-") }
        let deep = String(repeating: "and(", count: 40) + "id.eq.1" + String(repeating: ")", count: 40)
        #expect(throws: RestError.self) { try query("or=(\(deep))") }
        let nested = String(repeating: "a(", count: 40) + "*" + String(repeating: ")", count: 40)
        #expect(throws: RestError.self) { try query("select=\(nested)") }
        // is. writes one of its own words, whatever the case trick.
        let kelvin = try whereSQL("id=is.un%E2%84%AAnown")
        #expect(kelvin.text == #" WHERE "id" IS UNKNOWN"#)
        // Aggregates count their groups.
        let groups = try query("select=device,temp.avg()").countStatement(table)
        #expect(groups.text.hasPrefix("SELECT count(*) FROM (SELECT \"device\", avg(\"temp\")"))
    }

    @Test func preferencesAreReadLikePostgREST() {
        let prefer = RestPreferences([
            "return=representation, count=exact", "resolution=merge-duplicates,missing=default",
            "handling=strict, max-affected=3, tx=rollback, sideways=yes",
        ])
        #expect(prefer.returning == .representation && prefer.count == .exact)
        #expect(prefer.resolution == .mergeDuplicates && prefer.missingDefault)
        #expect(prefer.strict && prefer.maxAffected == 3 && prefer.transaction == .rollback)
        #expect(prefer.unknown == ["sideways=yes"])
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
        #expect(throws: RestError.self) { try statement("bucket=5m&agg=avg(temp)") }  // no time column
        #expect(throws: RestError.self) { try statement("bucket=5m&agg=avg(temp)&time_column=device") }
    }

    @Test func writesBindTheBodyAndTheirFilters() throws {
        #expect(throws: RestError.self) { try query("bucket=1h", forWrite: true) }
        let update = try query("id=eq.3", forWrite: true).updateStatement(
            table, body: #"{"temp":1}"#, columns: ["temp"], returning: .rows)
        #expect(
            update.text.contains(
                #"SET "temp" = (SELECT "temp" FROM json_populate_record(NULL::"public"."readings", $1::json))"#))
        #expect(update.text.contains(#"WHERE "id" = $2 RETURNING "public"."readings".*"#))
        #expect(update.parameters == [#"{"temp":1}"#, "3"])
        let limited = try query("device=eq.a&order=id.desc&limit=2", forWrite: true).deleteStatement(
            table, returning: .nothing)
        #expect(
            limited.text.contains(
                #"WHERE "device" = $2 AND (tableoid, ctid) IN (SELECT tableoid, ctid FROM "public"."readings" WHERE "device" = $1 ORDER BY "id" DESC LIMIT 2)"#
            ))
        #expect(limited.parameters == ["a", "a"])
    }

    @Test func insertsUpsertAndTakeDefaultsPerKeySet() throws {
        let body = try RestQuery.insertBody(#"[{"id":1,"temp":2},{"id":2}]"#, table: table, columns: nil)
        #expect(body.columns == ["id", "temp"])
        #expect(body.groups.map(\.columns) == [["id", "temp"], ["id"]])
        let upsert = try query("", forWrite: true).insertStatement(
            table, body: body, missingDefault: false, resolution: .mergeDuplicates, returning: .nothing)
        #expect(upsert.text.contains(#"ON CONFLICT ("id") DO UPDATE SET "temp" = EXCLUDED."temp""#))
        #expect(upsert.parameters.count == 1)
        let ignore = try query("on_conflict=device", forWrite: true).insertStatement(
            table, body: body, missingDefault: false, resolution: .ignoreDuplicates, returning: .nothing)
        #expect(ignore.text.contains(#"ON CONFLICT ("device") DO NOTHING"#))
        let defaults = try query("", forWrite: true).insertStatement(
            table, body: body, missingDefault: true, resolution: nil, returning: .rows)
        #expect(defaults.text.contains(#"pgrst_insert_0 AS (INSERT INTO "public"."readings" ("id", "temp")"#))
        #expect(defaults.text.contains(#"pgrst_insert_1 AS (INSERT INTO "public"."readings" ("id")"#))
        #expect(defaults.parameters == [body.json, "{1}", "{2}"])
        #expect(throws: RestError.self) { try RestQuery.insertBody(#"[{"nope":1}]"#, table: table, columns: nil) }
        #expect(throws: RestError.self) { try RestQuery.insertBody("[1,2]", table: table, columns: nil) }
    }
}
