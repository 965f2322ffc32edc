import Foundation
import HTTPTypes
import Hummingbird
import PostgresClient

/// `/rpc/{function}`: PostgREST's function calls. POST takes a JSON object of named arguments
/// (or, with `Prefer: params=single-object` or a single json parameter, the whole body); GET
/// and HEAD take them from the query string and run read-only. Set results take filters,
/// `select`, `order` and paging like a table.
extension TableRoutes {
    enum CallMethod { case get, head, post }

    func rpc(_ request: Request, _ context: BasicRequestContext, method: CallMethod) async throws -> Response {
        let identity = try await auth.identify(authorization: request.headers[.authorization], write: false)
        let raw = try context.parameters.require("function")
        let name = RestQuery.decodeComponent(Substring(raw), plusIsSpace: false)
        guard !name.isEmpty, name.utf8.count <= 63, !name.unicodeScalars.contains(where: { $0.value < 32 }) else {
            throw RestError.parse("expected /rpc/{function}")
        }
        let schema = try profileSchema(request, write: method == .post)
        let overloads: [FunctionInfo]
        do {
            overloads = try await catalog.functions(schema: schema, name: name)
        } catch let error as PostgresError {
            throw Self.catalogError(error)
        }
        let preferences = RestPreferences(request.headers[values: APIServer.preferHeader])
        // The arguments: the body's keys, or the query parameters that name an argument.
        var argumentJSON: String?
        var keys: Set<String> = []
        var filters: [(String, String)] = []
        let argumentNames = Set(overloads.flatMap { $0.inputs.map(\.name) })
        if method == .post {
            let body = try await jsonBody(request)
            let text = body.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? "{}" : body
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            else { throw RestError.body("the body is not JSON: send an object of the function's arguments") }
            if let object = parsed as? [String: Any], !preferences.singleObjectParameters {
                keys = Set(object.keys)
            }
            argumentJSON = text
            filters = RestQuery.pairs(request.uri.query)
        } else {
            var arguments: [String: String] = [:]
            for (key, value) in RestQuery.pairs(request.uri.query) {
                if argumentNames.contains(key) { arguments[key] = value } else { filters.append((key, value)) }
            }
            keys = Set(arguments.keys)
            let data = try JSONSerialization.data(withJSONObject: arguments, options: [.sortedKeys])
            argumentJSON = String(decoding: data, as: UTF8.self)
        }
        // The whole body as one json argument: asked for, or the function's one parameter is
        // an unnamed json/jsonb.
        let wholeBody =
            method == .post
            && (preferences.singleObjectParameters
                || overloads.contains { $0.takesSingleObject && $0.inputs[0].name.isEmpty })
        let function = try Self.overload(overloads, keys: keys, singleObject: wholeBody, schema: schema, name: name)
        if method == .post, function.volatility == "v", identity.anonymous, !auth.anonymousWrites {
            throw RestError(
                status: .unauthorized, code: "PGRST302",
                message: "calling the volatile function \(function.display) needs Authorization: Bearer <JWT>",
                hint: "api.anonymous_writes lets requests without a token call functions that write",
                headers: [.wwwAuthenticate: "Bearer realm=\"pgbridge\""])
        }
        let singleObject = wholeBody
        var table = Self.resultTable(function, keys: keys, singleObject: singleObject)
        if singleObject || function.inputs.contains(where: { keys.contains($0.name) }) {
            table.sourceParameters = [argumentJSON]
        }
        let query = try RestQuery(pairs: filters, table: table)
        var representation = try Representation.negotiate(request.headers[.accept])
        if !function.returnsSet, representation != .csv { representation = .object(stripNulls: false) }
        let page = query.page(range: try Self.range(request.headers[APIServer.rangeHeader]))
        if case .void = function.returns {
            return try await callVoid(
                function, table: table, identity: identity, request: request, readOnly: method != .post)
        }
        var plan = ReadPlan(
            statement: try query.selectStatement(table, timeBucket: false, page: page),
            counted: query.countStatement(table), page: page, representation: representation,
            preferences: preferences, table: table)
        if case .scalar = function.returns { plan.rowJSON = "to_json(pgrst_row.\(SQL.identifier(function.name)))" }
        plan.readOnly = method != .post || function.volatility != "v"
        plan.rollback = preferences.transaction == .rollback && allowTransactionOverride
        var response = try await respond(plan, identity: identity, request: request, head: method == .head)
        if !function.returnsSet { response.headers[.contentType] = "application/json; charset=utf-8" }
        return response
    }

    /// The schema `Accept-Profile` / `Content-Profile` picks (the first exposed one by default).
    func profileSchema(_ request: Request, write: Bool) throws -> String {
        guard let profile = request.headers[write ? APIServer.contentProfileHeader : APIServer.acceptProfileHeader]
        else { return schemas.first ?? "public" }
        guard schemas.contains(profile) else {
            throw RestError(
                status: .notAcceptable, code: "PGRST106",
                message: "The schema must be one of the following: \(schemas.joined(separator: ", "))",
                hint: "api.rest_schemas lists the schemas a profile header may pick")
        }
        return profile
    }

    /// The one overload that takes exactly these arguments.
    static func overload(
        _ overloads: [FunctionInfo], keys: Set<String>, singleObject: Bool, schema: String, name: String
    )
        throws -> FunctionInfo
    {
        let matching = singleObject ? overloads.filter(\.takesSingleObject) : overloads.filter { $0.accepts(keys) }
        guard !matching.isEmpty else {
            throw RestError(
                status: .notFound, code: "PGRST202",
                message:
                    "Could not find the function \(schema).\(name)(\(keys.sorted().joined(separator: ", "))) in the schema cache",
                details: overloads.isEmpty ? nil : "it takes " + overloads.map(\.display).joined(separator: " or "),
                hint: "the function must exist in an exposed schema (api.rest_schemas) and take these named arguments")
        }
        guard matching.count == 1 else {
            throw RestError(
                status: .multipleChoices, code: "PGRST203",
                message: "Could not choose the best candidate function between: "
                    + matching.map(\.display).joined(separator: ", "),
                hint:
                    "Try renaming the parameters or the function itself in the database so function overloading can be resolved"
            )
        }
        return matching[0]
    }

    /// The function's result as a table a read can select from: the call is a subquery whose
    /// arguments come from `$1` (a JSON object, turned into typed values by `json_to_record`).
    static func resultTable(_ function: FunctionInfo, keys: Set<String>, singleObject: Bool) -> TableInfo {
        let call = callSQL(function, keys: keys, singleObject: singleObject)
        let columns: [TableInfo.Column]
        let source: String
        switch function.returns {
        case .rows(let resultColumns):
            columns = resultColumns
            source = "(SELECT pgrst_f.* FROM \(call) AS pgrst_f)"
        case .scalar(let type):
            columns = [.init(name: function.name, type: type)]
            source = "(SELECT pgrst_f.v AS \(SQL.identifier(function.name)) FROM \(call) AS pgrst_f(v))"
        case .void:
            columns = []
            source = "(SELECT 1 FROM \(call) AS pgrst_f)"
        }
        var table = TableInfo(schema: function.schema, name: function.name, columns: columns)
        table.source = source
        return table
    }

    /// `json_to_record($1::json) AS pgrst_args(…), LATERAL fn(a := pgrst_args.a, …)`.
    static func callSQL(_ function: FunctionInfo, keys: Set<String>, singleObject: Bool) -> String {
        let qualified = "\(SQL.identifier(function.schema)).\(SQL.identifier(function.name))"
        if singleObject { return "\(qualified)($1::\(function.inputs[0].type))" }
        let given = function.inputs.filter { keys.contains($0.name) }
        guard !given.isEmpty else { return "\(qualified)()" }
        let columns = given.map { "\(SQL.identifier($0.name)) \($0.type)" }.joined(separator: ", ")
        let arguments = given.map {
            ($0.variadic ? "VARIADIC " : "") + "\(SQL.identifier($0.name)) := pgrst_args.\(SQL.identifier($0.name))"
        }.joined(separator: ", ")
        return "json_to_record($1::json) AS pgrst_args(\(columns)), LATERAL \(qualified)(\(arguments))"
    }

    /// Calls a function that returns nothing: 204.
    func callVoid(
        _ function: FunctionInfo, table: TableInfo, identity: ProxyIdentity, request: Request, readOnly: Bool
    ) async throws
        -> Response
    {
        let settings = settings(identity, request)
        let sql = "SELECT count(*) FROM \(table.source ?? "") AS pgrst_v"
        let parameters = table.sourceParameters
        do {
            let done = try await pool.withSession(timeout: .seconds(10)) { session in
                try await session.run { connection in
                    _ = try Self.transaction(
                        connection, settings, relations: [], readOnly: readOnly,
                        [SQLStatement(text: sql, parameters: parameters)], finish: .commit)
                    return true
                }
            }
            guard done != nil else {
                throw RestError.busy
            }
        } catch {
            throw await mapped(error, identity: identity, table: table)
        }
        return Response(status: .noContent)
    }
}
