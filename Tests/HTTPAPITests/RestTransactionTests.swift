import Foundation
import PostgresClient
import Testing

@testable import HTTPAPI

@Suite("REST proxy request transactions")
struct RestTransactionTests {
    @Test func namesAndValuesAreQuoted() {
        #expect(SQL.textArray([]) == "{}")
        #expect(SQL.textArray(["public", "api"]) == #"{"public","api"}"#)
        // Quotes, backslashes, commas, braces and spaces survive as one element each.
        let names = [#"we"ird"#, #"back\slash"#, "a,b {c}", "é漢字🙂"]
        #expect(SQL.textArray(names) == #"{"we\"ird","back\\slash","a,b {c}","é漢字🙂"}"#)
        #expect(SQL.parseTextArray(SQL.textArray(names)) == names)
        #expect(SQL.identifier("readings") == #""readings""#)
        #expect(SQL.identifier(#"a"b"#) == #""a""b""#)
        #expect(SQL.literal("it's") == "'it''s'")
        #expect(SQL.literal("é'漢") == "'é''漢'")
    }

    /// `scripts/bench-api` measures the proxy's ceiling with pgbench sending the statement that
    /// opens each request's transaction: it must stay the statement the proxy sends.
    @Test func theBenchmarkSendsTheProxysSettingsStatement() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let script = try String(contentsOf: root.appendingPathComponent("scripts/bench-api"), encoding: .utf8)
        let start = try #require(script.range(of: "SETTINGS_SQL=\""))
        let end = try #require(script.range(of: "\"\n", range: start.upperBound..<script.endIndex))
        let benchmark = script[start.upperBound..<end.lowerBound].replacingOccurrences(of: "\\\n", with: "")
        var proxy = TableRoutes.requestSettingsSQL
        let variables = [
            "$1": ":role", "$2": ":timeout", "$3": ":claims", "$4": ":headers", "$5": ":cookies", "$6": ":method",
            "$7": ":path", "$8": ":schemas", "$9": ":relations",
        ]
        for (parameter, variable) in variables { proxy = proxy.replacingOccurrences(of: parameter, with: variable) }
        #expect(benchmark == proxy)
    }

    @Test func headersAndCookiesBecomeJSONObjects() throws {
        let text = TableRoutes.jsonObject([("x-b", "2"), ("x-a", "quote \" and \\ and \n")])
        #expect(text == #"{"x-a":"quote \" and \\ and \n","x-b":"2"}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
        #expect(parsed == ["x-a": "quote \" and \\ and \n", "x-b": "2"])
        #expect(TableRoutes.jsonObject([]) == "{}")
    }

    @Test func theRoleCheckRaisesInsteadOfAnsweringSoThatNothingAfterItRuns() {
        let sql = TableRoutes.requestSettingsSQL
        #expect(sql.contains("set_config('role', $1::text, true)"))
        // The refusal is a failing cast whose text is not a constant (it would be raised
        // while planning, refusing every role, if it were).
        #expect(sql.contains("CAST(\(TableRoutes.refusalMarker) || session_user::text AS integer)"))
        // A role missing from pg_roles ('none' included) is refused, not let through.
        #expect(sql.contains("), true) THEN CAST("))
    }

    /// Which failures of an earlier prepared plan are worth one more run with a fresh plan.
    @Test func staleButNotRefusedPlansAreRunAgain() {
        for state in ["42883", "42804", "22P02", "22003", "0A000"] {
            #expect(TableRoutes.mayBeStalePlan(state), "\(state)")
        }
        for state in ["42501", "23505", "40001", "57014", "08006", nil] {
            #expect(!TableRoutes.mayBeStalePlan(state), "\(state ?? "none")")
        }
    }
}

@Suite("REST proxy query strings")
struct RestQueryStringTests {
    @Test func componentsDecodeLikeFoundation() {
        let cases = [
            "plain", "a+b%20c", "%C3%A9t%C3%A9", "100%25", "%zz", "trailing%", "trailing%4", "%FF", "+%2B+", "",
            "or=(a.eq.1,b.eq.2)", "%E6%BC%A2%E5%AD%97%F0%9F%99%82",
        ]
        for text in cases {
            let spaced = text.replacingOccurrences(of: "+", with: " ")
            let expected = spaced.removingPercentEncoding ?? spaced
            #expect(RestQuery.decodeComponent(Substring(text)) == expected, "\(text)")
        }
        #expect(RestQuery.decodeComponent("a+b%20c") == "a b c")
        #expect(RestQuery.decodeComponent("%zz+x") == "%zz x")
        // Paths keep their plus signs.
        for text in cases {
            #expect(
                RestQuery.decodeComponent(Substring(text), plusIsSpace: false) == text.removingPercentEncoding ?? text)
        }
    }

    @Test func pairsSplitOnAmpersandsAndTheFirstEquals() {
        let pairs = RestQuery.pairs("id=eq.1&&select=a,b&name=eq.x%3Dy&flag")
        #expect(pairs.map(\.0) == ["id", "select", "name", "flag"])
        #expect(pairs.map(\.1) == ["eq.1", "a,b", "eq.x=y", ""])
    }
}
