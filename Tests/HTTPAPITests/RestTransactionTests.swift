import Foundation
import Testing

@testable import HTTPAPI

@Suite("REST proxy request transactions")
struct RestTransactionTests {
    @Test func relationNamesBecomeQuotedTextArrays() {
        #expect(TableRoutes.textArray([]) == "{}")
        #expect(TableRoutes.textArray(["public", "api"]) == #"{"public","api"}"#)
        // Quotes, backslashes, commas, braces and spaces survive as one element each.
        #expect(
            TableRoutes.textArray([#"we"ird"#, #"back\slash"#, "a,b {c}"]) == #"{"we\"ird","back\\slash","a,b {c}"}"#)
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
}
