import Foundation
import HTTPTypes
import Hummingbird

/// An error of the REST proxy in PostgREST's shape: `{"code", "message", "details", "hint"}`,
/// where `code` is PostgreSQL's SQLSTATE or one of PostgREST's `PGRST…` codes, so that PostgREST
/// clients report it. Messages never hold secrets.
struct RestError: HTTPResponseError, Equatable, CustomStringConvertible {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var details: String?
    var hint: String?
    var headers: HTTPFields = [:]

    var description: String { "\(code): \(message)" }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    var body: [UInt8] {
        var out = Array(#"{"code":"#.utf8)
        Self.appendJSON(code, into: &out)
        out += Array(#","details":"#.utf8)
        Self.appendJSON(details, into: &out)
        out += Array(#","hint":"#.utf8)
        Self.appendJSON(hint, into: &out)
        out += Array(#","message":"#.utf8)
        Self.appendJSON(message, into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func appendJSON(_ text: String?, into out: inout [UInt8]) {
        guard let text else {
            out += Array("null".utf8)
            return
        }
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data()
        out += Array(data.dropFirst().dropLast())
    }

    /// PGRST100: the query string does not parse.
    static func parse(_ message: String, details: String? = nil, hint: String? = nil) -> RestError {
        RestError(status: .badRequest, code: "PGRST100", message: message, details: details, hint: hint)
    }

    /// PGRST102: the body is not what the request needs.
    static func body(_ message: String, details: String? = nil) -> RestError {
        RestError(status: .badRequest, code: "PGRST102", message: message, details: details)
    }

    /// 42703: a column the table does not have.
    static func unknownColumn(_ column: String, in table: String, hint: String? = nil) -> RestError {
        RestError(
            status: .badRequest, code: "42703", message: "column \(table).\(column.prefix(63)) does not exist",
            hint: hint)
    }

    /// PGRST205: no such table or view in the exposed schemas.
    static func unknownTable(_ schema: String, _ name: String) -> RestError {
        RestError(
            status: .notFound, code: "PGRST205",
            message: "Could not find the table '\(schema.prefix(63)).\(name.prefix(63))' in the schema cache",
            hint: "names are case-sensitive; only tables and views of api.rest_schemas are served")
    }

    /// PGRST103: a range the rows cannot satisfy.
    static func range(_ details: String, headers: HTTPFields = [:]) -> RestError {
        RestError(
            status: .rangeNotSatisfiable, code: "PGRST103", message: "Requested range not satisfiable",
            details: details, headers: headers)
    }

    /// PGRST108: a parameter scoped to a resource the select does not embed.
    static func notEmbedded(_ path: [String], hint: String) -> RestError {
        RestError(
            status: .badRequest, code: "PGRST108",
            message: "'\(path.joined(separator: "."))' is not an embedded resource in this request", hint: hint)
    }

    /// PGRST204: a body key that is not a column.
    static func unknownBodyColumn(_ key: String, in table: TableInfo) -> RestError {
        RestError(
            status: .badRequest, code: "PGRST204",
            message: "Could not find the '\(key.prefix(63))' column of '\(table.name)' in the schema cache")
    }

    /// PGRST003: no pooled connection freed up in time.
    static var busy: RestError {
        RestError(
            status: .serviceUnavailable, code: "PGRST003",
            message: "every PostgreSQL connection of the REST proxy is busy (api.pool_size): try again")
    }

    /// PGRST116: `application/vnd.pgrst.object+json` and not exactly one row.
    static func singular(_ rows: Int) -> RestError {
        RestError(
            status: .notAcceptable, code: "PGRST116",
            message: "JSON object requested, multiple (or no) rows returned",
            details: "The result contains \(rows) rows")
    }

    /// PostgreSQL's refusal with PostgREST's status for its SQLSTATE.
    static func database(
        sqlState: String, message: String, details: String? = nil, hint: String? = nil, anonymous: Bool
    ) -> RestError {
        RestError(
            status: status(sqlState: sqlState, anonymous: anonymous), code: sqlState, message: message,
            details: details, hint: hint)
    }

    /// PostgREST's table of SQLSTATEs to HTTP statuses (docs.postgrest.org, Errors).
    static func status(sqlState state: String, anonymous: Bool) -> HTTPResponse.Status {
        switch state {
        case "23503", "23505": return .conflict
        case "25006": return .methodNotAllowed
        case "42883", "42P01": return .notFound
        case "42P17": return .internalServerError
        case "42501": return anonymous ? .unauthorized : .forbidden
        case "53400": return .internalServerError
        case "P0001": return .badRequest
        default: break
        }
        let prefix = String(state.prefix(2))
        switch prefix {
        case "08", "53": return .serviceUnavailable
        case "0L", "0P", "28": return .forbidden
        case "09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "P0", "XX":
            return .internalServerError
        default: return .badRequest
        }
    }
}

extension RestError {
    /// The proxy's own refusals (`APIError`) in PostgREST's shape.
    init(_ error: APIError) {
        let code: String
        switch error.status {
        case .unauthorized: code = "PGRST301"
        case .forbidden: code = "42501"
        case .notFound: code = "PGRST205"
        case .serviceUnavailable: code = "PGRST000"
        case .contentTooLarge: code = "PGRST102"
        default: code = error.sqlState ?? "PGRST100"
        }
        self.init(status: error.status, code: code, message: error.message, headers: error.headers)
    }
}
