import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PostgresClient

/// POST (insert, upsert), PATCH and DELETE, PostgREST's way: `Prefer: return=`, `resolution=`,
/// `missing=default`, `count=`, `tx=`, `max-affected=` with `handling=strict`; `X-Commit-LSN`
/// names the commit's position in the change stream.
extension TableRoutes {
    func write(_ kind: Write, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await auth.identify(authorization: request.headers[.authorization], write: true)
        let table = try await table(request, context, write: true)
        let query = try RestQuery(pairs: RestQuery.pairs(request.uri.query), table: table, forWrite: true)
        let preferences = try RestPreferences(request.headers[values: APIServer.preferHeader]).checkedStrictness()
        if kind != .insert, query.root.conditions.isEmpty {
            throw RestError.parse(
                "refusing to \(kind == .update ? "PATCH" : "DELETE") every row of \(table.display): add a filter such as ?id=eq.1",
                hint: "pgbridge never updates or deletes a whole table through the REST proxy")
        }
        if let stray = query.scopes.keys.first {
            throw RestError.notEmbedded(stray, hint: "writes answer the written rows' own columns")
        }
        let representation = try Representation.negotiate(request.headers[.accept])
        if representation == .csv {
            throw RestError(
                status: .notAcceptable, code: "PGRST107", message: "None of these media types are available: text/csv",
                hint: "writes answer application/json or application/vnd.pgrst.object+json")
        }
        let singular = if case .object = representation { true } else { false }
        let returnPreference = preferences.returning ?? .minimal
        let needsRows = returnPreference != .minimal || singular
        let returning: RestQuery.Returning = needsRows ? .rows : .nothing
        let statement: SQLStatement
        switch kind {
        case .insert:
            let body = try await jsonBody(request)
            let parsed = try RestQuery.insertBody(body, table: table, columns: query.columns)
            statement = try query.insertStatement(
                table, body: parsed, missingDefault: preferences.missingDefault, resolution: preferences.resolution,
                returning: returning)
        case .update:
            let body = try await jsonBody(request)
            let (json, columns) = try Self.updateBody(body, table: table)
            statement = try query.updateStatement(table, body: json, columns: columns, returning: returning)
        case .delete:
            statement = try query.deleteStatement(table, returning: returning)
        }
        let settings = settings(identity, request)
        let lookup = commitLSN
        let rollback = preferences.transaction == .rollback && allowTransactionOverride
        let maxAffected = preferences.strict && kind != .insert ? preferences.maxAffected : nil
        let outcome: (rows: String?, count: Int, lsn: String?)
        do {
            let result = try await pool.withSession(timeout: .seconds(10)) { session in
                try await session.run { connection in
                    let results = try Self.transaction(
                        connection, settings, relations: [table], readOnly: false,
                        [
                            SQLStatement(
                                text: "SELECT pg_current_wal_insert_lsn()::text, pg_current_xact_id()::text",
                                parameters: [], cacheable: true),
                            SQLStatement(text: statement.text, parameters: statement.parameters, cacheable: true),
                        ], finish: .open)
                    let (position, result) = (results[0], results[1])
                    let count = Int(result.string(0, 1) ?? "0") ?? 0
                    if let maxAffected, count > maxAffected {
                        try connection.execute("ROLLBACK")
                        throw RestError(
                            status: .badRequest, code: "PGRST124",
                            message: "Query result exceeds max-affected preference constraint",
                            details: "The query affects \(count) rows")
                    }
                    if singular, count != 1 {
                        try connection.execute("ROLLBACK")
                        throw RestError.singular(count)
                    }
                    if rollback {
                        try connection.execute("ROLLBACK")
                        return (result.string(0, 0), count, String?.none)
                    }
                    try connection.execute("COMMIT")
                    let xid = position.string(0, 1).flatMap { UInt64($0) }.map { $0 & 0xFFFF_FFFF }
                    // A write that changed nothing produces no change event to match.
                    let lsn =
                        count == 0
                        ? nil
                        : lookup.find(
                            connection, start: position.string(0, 0) ?? "0/0", xid: xid.map { String($0) } ?? "0")
                    return (result.string(0, 0), count, lsn)
                }
            }
            guard let result else {
                throw RestError.busy
            }
            outcome = result
        } catch {
            throw await mapped(error, identity: identity, table: table)
        }
        var headers: HTTPFields = [:]
        if let lsn = outcome.lsn { headers[APIServer.commitLSNHeader] = lsn }
        let total = preferences.count == nil ? nil : outcome.count
        headers[.contentRange] =
            kind == .insert
            ? "*/\(total.map(String.init) ?? "*")" : Self.contentRange(offset: 0, rows: outcome.count, total: total)
        var applied = ["return=\(returnPreference.rawValue)"]
        if let count = preferences.count { applied.append("count=\(count.rawValue)") }
        if kind == .insert, let resolution = preferences.resolution {
            applied.append("resolution=\(resolution.rawValue)")
        }
        if kind == .insert, preferences.missingDefault { applied.append("missing=default") }
        if let transaction = preferences.transaction, allowTransactionOverride {
            applied.append("tx=\(transaction.rawValue)")
        }
        if let maxAffected { applied.append("max-affected=\(maxAffected)") }
        headers[APIServer.preferenceAppliedHeader] = applied.joined(separator: ", ")
        if returnPreference == .headersOnly, kind == .insert, let location = Self.location(table, outcome.rows) {
            headers[.location] = location
        }
        let status: HTTPResponse.Status =
            kind == .insert ? .created : (returnPreference == .representation ? .ok : .noContent)
        guard returnPreference == .representation, let rows = outcome.rows else {
            return Response(status: status, headers: headers)
        }
        var body = rows
        if singular {
            headers[.contentType] = "application/vnd.pgrst.object+json; charset=utf-8"
            body = String(rows.dropFirst().dropLast())
        } else {
            headers[.contentType] = "application/json; charset=utf-8"
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// The request's body as JSON text. `application/x-www-form-urlencoded` (what `curl -d`
    /// sends) is read as JSON when it is JSON, else as a form (one object of strings), as
    /// PostgREST reads forms; other media types are refused.
    func jsonBody(_ request: Request) async throws -> String {
        let body = String(buffer: try await request.body.collect(upTo: maxBodyBytes))
        let type =
            (request.headers[.contentType] ?? "").split(separator: ";").first.map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            } ?? ""
        switch type {
        case "", "application/json", "application/vnd.pgrst.object+json":
            return body
        case "application/x-www-form-urlencoded":
            let trimmed = body.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.hasPrefix("{") || trimmed.hasPrefix("[") { return body }
            var object: [String: String] = [:]
            for (key, value) in RestQuery.pairs(trimmed) { object[key] = value }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        default:
            throw RestError(
                status: .unsupportedMediaType, code: "PGRST107",
                message: "The request's Content-Type \(type.prefix(60)) is not supported: send application/json")
        }
    }

    /// `/table?key=eq.value` of the first inserted row, by the primary key.
    static func location(_ table: TableInfo, _ rows: String?) -> String? {
        guard !table.primaryKey.isEmpty, let rows, let data = rows.data(using: .utf8),
            let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]], let first = list.first
        else { return nil }
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let filters = table.primaryKey.map { key -> String in
            let value = first[key].map { "\($0)" } ?? ""
            return
                "\(key.addingPercentEncoding(withAllowedCharacters: allowed) ?? key)=eq.\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
        }
        return "/\(table.name)?" + filters.joined(separator: "&")
    }

    /// The body of an update: one JSON object whose keys are columns.
    static func updateBody(_ body: String, table: TableInfo) throws -> (String, [String]) {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(body.utf8)) else {
            throw RestError.body("the body is not JSON: send an object")
        }
        guard let object = parsed as? [String: Any] else { throw RestError.body("expected a JSON object") }
        var columns: [String] = []
        for key in object.keys.sorted() {
            guard table.column(key) != nil else {
                throw RestError.unknownBodyColumn(key, in: table)
            }
            columns.append(key)
        }
        guard !columns.isEmpty else { throw RestError.body("the body names no column") }
        return (body, columns)
    }
}
