import BridgeCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresClient

/// The REST read/write proxy: `/v1/tables/{schema}.{table}` (PostgREST-style).
extension APIServer {
    static let commitLSNHeader = HTTPField.Name("X-Commit-LSN")!
    static let preferHeader = HTTPField.Name("Prefer")!
    static let preferenceAppliedHeader = HTTPField.Name("Preference-Applied")!
    static let fetchRows = 1000

    func addTableRoutes(to router: Router<BasicRequestContext>, tables: TableRoutes) {
        router.get("/v1/tables/{table}") { request, context in
            try await tables.read(request, context)
        }
        router.post("/v1/tables/{table}") { request, context in
            try await tables.write(.insert, request, context)
        }
        router.patch("/v1/tables/{table}") { request, context in
            try await tables.write(.update, request, context)
        }
        router.delete("/v1/tables/{table}") { request, context in
            try await tables.write(.delete, request, context)
        }
    }
}

/// The proxy's state: the pool, the catalog, token verification and the commit-LSN lookup.
struct TableRoutes: Sendable {
    enum Write { case insert, update, delete }

    let pool: SQLPool
    let catalog: TableCatalog
    let auth: ProxyAuth
    let statementTimeout: Duration
    let maxBodyBytes: Int
    let commitLSN: CommitLSNLookup

    /// `schema.table` (or `table` in `public`; double quotes for names with dots).
    func table(_ context: BasicRequestContext) async throws -> TableInfo {
        let raw = try context.parameters.require("table")
        let text = raw.removingPercentEncoding ?? raw
        guard let (schema, name) = Self.split(text) else {
            throw APIError.badRequest("expected /v1/tables/schema.table, got '\(text.prefix(80))'")
        }
        if TableCatalog.isHidden(schema: schema) {
            throw APIError.notFound(
                "the schema \(schema) is never served by the REST proxy (pgbridge's own objects and the system catalogs)"
            )
        }
        do {
            guard let table = try await catalog.table(schema: schema, name: name) else {
                throw APIError.notFound("no table \(schema).\(name) (names are case-sensitive)")
            }
            return table
        } catch is PostgresError {
            throw APIError.unavailable("the database is not reachable: try again")
        }
    }

    static func split(_ text: String) -> (String, String)? {
        var parts: [String] = []
        var current = ""
        var quoted = false
        let characters = Array(text)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            index += 1
            if character == "\"" {
                if quoted, index < characters.count, characters[index] == "\"" {
                    current.append("\"")  // "" inside quotes is one quote
                    index += 1
                } else {
                    quoted.toggle()
                }
            } else if character == ".", !quoted {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        guard !quoted, parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else { return nil }
        switch parts.count {
        case 1: return ("public", parts[0])
        case 2: return (parts[0], parts[1])
        default: return nil
        }
    }

    func settings(_ identity: ProxyIdentity) -> [String?] {
        [identity.role, "\(Int(statementTimeout.seconds * 1000))", identity.claims]
    }

    /// Opens the request's transaction as the caller's role, in one round trip. Refuses roles
    /// that would escape row-level security or act as pgbridge itself: `none` (back to the login
    /// role), the login role, superusers, BYPASSRLS and REPLICATION roles, and owners of the table
    /// (or members of its owner) when it has row-level security without FORCE (owners bypass it).
    static func begin(_ connection: SQLConnection, _ settings: [String?], table: TableInfo, readOnly: Bool) throws {
        let values = try settings.map { try connection.literal($0 ?? "") }
        let schema = try connection.literal(table.schema)
        let name = try connection.literal(table.name)
        let check: SQLResult
        do {
            check = try connection.execute(
                """
                BEGIN\(readOnly ? " READ ONLY" : ""); SELECT set_config('role', \(values[0]), true), \
                set_config('statement_timeout', \(values[1]), true), \
                set_config('idle_in_transaction_session_timeout', \(values[1]), true), \
                set_config('request.jwt.claims', \(values[2]), true); \
                SELECT current_user = session_user OR r.rolsuper OR r.rolbypassrls OR r.rolreplication \
                    OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                               WHERE n.nspname = \(schema) AND c.relname = \(name) AND c.relrowsecurity \
                                 AND NOT c.relforcerowsecurity AND pg_has_role(current_user, c.relowner, 'USAGE')) \
                FROM pg_roles r WHERE r.rolname = current_user
                """)
        } catch let error as PostgresError where error.sqlState == "22023" || error.sqlState == "42704" {
            // set_config('role', …) of a role that does not exist (invalid_parameter_value); the
            // lease rolls the transaction back.
            throw APIError.forbidden(
                "role \(settings[0].map { String($0.prefix(63)) } ?? "") does not exist: the token's role claim must name a database role"
            )
        }
        if check.string(0, 0) != "f" {
            throw APIError.forbidden(
                "role \(settings[0].map { String($0.prefix(63)) } ?? "") may not be used through the REST proxy (it is pgbridge's own login, a superuser, has BYPASSRLS or REPLICATION, or owns \(table.schema).\(table.name), whose row-level security it would bypass: ALTER TABLE … FORCE ROW LEVEL SECURITY, or use another role)"
            )
        }
    }

    /// A pooled session, or 503 when every one stays busy.
    func lease() async throws -> SQLLease {
        guard let lease = await pool.lease(timeout: .seconds(10)) else {
            throw APIError.unavailable(
                "every PostgreSQL connection of the REST proxy is busy (api.pool_size): try again")
        }
        return lease
    }

    // MARK: Reads

    func read(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        // Who asks comes first: the catalog answers nothing to an unauthenticated caller.
        let identity = try await auth.identify(authorization: request.headers[.authorization], write: false)
        let table = try await table(context)
        let query: RestQuery
        do {
            query = try RestQuery(pairs: RestQuery.pairs(request.uri.query), table: table)
        } catch let error as RestQueryError {
            throw APIError.badRequest(error.message)
        }
        let csv = (request.headers[.accept] ?? "").contains("text/csv")
        let statement: SQLStatement
        do {
            statement = try query.selectStatement(table, timeBucket: try await catalog.hasTimescaleDB())
        } catch let error as RestQueryError {
            throw APIError.badRequest(error.message)
        } catch is PostgresError {
            throw APIError.unavailable("the database is not reachable: try again")
        }
        let sql =
            csv ? statement.text : "SELECT row_to_json(pgbridge_row)::text FROM (\(statement.text)) pgbridge_row"
        let settings = settings(identity)
        // A result that fits one fetch is read and committed in the first round trips; a
        // larger one is streamed from a cursor, 1,000 rows at a time.
        let direct = query.limit.map { $0 <= APIServer.fetchRows } ?? false
        let lease = try await lease()
        let session = lease.session
        let first: Chunk
        do {
            first = try await session.run { connection in
                try Self.begin(connection, settings, table: table, readOnly: true)
                let result: SQLResult
                if direct {
                    result = try connection.execute(sql, statement.parameters)
                } else {
                    try connection.execute("DECLARE pgbridge_rows NO SCROLL CURSOR FOR \(sql)", statement.parameters)
                    result = try connection.execute("FETCH \(APIServer.fetchRows) FROM pgbridge_rows")
                }
                var chunk = Self.fetch(result, csv: csv, header: true, first: true)
                if direct || chunk.rows < APIServer.fetchRows {
                    try connection.execute("COMMIT")
                    chunk.complete = true
                }
                return chunk
            }
        } catch {
            lease.release(committed: false)
            throw await mapped(error, identity: identity, table: table)
        }
        let contentType = csv ? "text/csv; charset=utf-8" : "application/json"
        if first.complete {
            lease.release(committed: true)
            var body = ByteBuffer()
            body.reserveCapacity(first.bytes.count + 2)
            if !csv { body.writeString("[") }
            body.writeBytes(first.bytes)
            if !csv { body.writeString("]") }
            return Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: body))
        }
        return Response(
            status: .ok, headers: [.contentType: contentType],
            body: ResponseBody { writer in
                do {
                    var wroteRows = first.rows > 0
                    try await writer.write(ByteBuffer(bytes: (csv ? [] : Array("[".utf8)) + first.bytes))
                    var done = first.rows < APIServer.fetchRows
                    while !done {
                        let more = wroteRows
                        let chunk = try await session.run { connection in
                            Self.fetch(
                                try connection.execute("FETCH \(APIServer.fetchRows) FROM pgbridge_rows"), csv: csv,
                                header: false, first: !more)
                        }
                        if chunk.rows > 0 { try await writer.write(ByteBuffer(bytes: chunk.bytes)) }
                        wroteRows = wroteRows || chunk.rows > 0
                        done = chunk.rows < APIServer.fetchRows
                    }
                    _ = try await session.run { connection in try connection.execute("COMMIT") }
                    lease.release(committed: true)
                } catch {
                    lease.release(committed: false)
                    throw error
                }
                if !csv { try await writer.write(ByteBuffer(string: "]")) }
                try await writer.finish(nil)
            })
    }

    struct Chunk: Sendable {
        var bytes: [UInt8]
        var rows: Int
        /// The transaction is committed: nothing more to fetch.
        var complete = false
    }

    /// JSON rows joined by commas, or CSV lines (with the header line first).
    static func fetch(_ result: SQLResult, csv: Bool, header: Bool, first: Bool) -> Chunk {
        var bytes: [UInt8] = []
        if csv {
            if header {
                for column in 0..<result.columnCount {
                    if column > 0 { bytes.append(UInt8(ascii: ",")) }
                    appendCSV(Array(result.columnName(column).utf8), into: &bytes)
                }
                bytes.append(UInt8(ascii: "\n"))
            }
            var value: [UInt8] = []
            for row in 0..<result.rowCount {
                for column in 0..<result.columnCount {
                    if column > 0 { bytes.append(UInt8(ascii: ",")) }
                    value.removeAll(keepingCapacity: true)
                    if result.appendValue(row, column, into: &value) { appendCSV(value, into: &bytes) }
                }
                bytes.append(UInt8(ascii: "\n"))
            }
        } else {
            for row in 0..<result.rowCount {
                if row > 0 || !first { bytes.append(UInt8(ascii: ",")) }
                result.appendValue(row, 0, into: &bytes)
            }
        }
        return Chunk(bytes: bytes, rows: result.rowCount)
    }

    /// RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled.
    static func appendCSV(_ value: [UInt8], into out: inout [UInt8]) {
        let needsQuotes = value.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 }
        guard needsQuotes else {
            out.append(contentsOf: value)
            return
        }
        out.append(UInt8(ascii: "\""))
        for byte in value {
            if byte == UInt8(ascii: "\"") { out.append(byte) }
            out.append(byte)
        }
        out.append(UInt8(ascii: "\""))
    }

    // MARK: Writes

    func write(_ kind: Write, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await auth.identify(authorization: request.headers[.authorization], write: true)
        let table = try await table(context)
        let query: RestQuery
        do {
            query = try RestQuery(pairs: RestQuery.pairs(request.uri.query), table: table, allowShaping: false)
        } catch let error as RestQueryError {
            throw APIError.badRequest(error.message)
        }
        if kind != .insert, query.filters.isEmpty {
            throw APIError.badRequest(
                "refusing to \(kind == .update ? "PATCH" : "DELETE") every row of \(table.schema).\(table.name): add a filter such as ?id=eq.1"
            )
        }
        let prefer = request.headers[APIServer.preferHeader] ?? ""
        let representation = prefer.contains("return=representation")
        let statement: SQLStatement
        switch kind {
        case .insert, .update:
            let body = String(buffer: try await request.body.collect(upTo: maxBodyBytes))
            let (json, columns) = try Self.bodyColumns(body, table: table, array: kind == .insert)
            statement =
                kind == .insert
                ? RestQuery.insertStatement(table, body: json, columns: columns, returning: representation)
                : query.updateStatement(table, body: json, columns: columns, returning: representation)
        case .delete:
            statement = query.deleteStatement(table, returning: representation)
        }
        let settings = settings(identity)
        let lookup = commitLSN
        let outcome: (rows: String?, count: Int, lsn: String?)
        do {
            let result = try await pool.withSession(timeout: .seconds(10)) { session in
                try await session.run { connection in
                    try Self.begin(connection, settings, table: table, readOnly: false)
                    let position = try connection.execute(
                        "SELECT pg_current_wal_insert_lsn()::text, pg_current_xact_id()::text")
                    let result = try connection.execute(statement.text, statement.parameters)
                    try connection.execute("COMMIT")
                    let xid = position.string(0, 1).flatMap { UInt64($0) }.map { $0 & 0xFFFF_FFFF }
                    let count = Int(result.string(0, 1) ?? "0") ?? 0
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
                throw APIError.unavailable(
                    "every PostgreSQL connection of the REST proxy is busy (api.pool_size): try again")
            }
            outcome = result
        } catch {
            throw await mapped(error, identity: identity, table: table)
        }
        var headers: HTTPFields = [:]
        if let lsn = outcome.lsn { headers[APIServer.commitLSNHeader] = lsn }
        headers[.contentRange] = "*/\(outcome.count)"
        headers[APIServer.preferenceAppliedHeader] = representation ? "return=representation" : "return=minimal"
        let status: HTTPResponse.Status = kind == .insert ? .created : (representation ? .ok : .noContent)
        guard representation, let rows = outcome.rows else { return Response(status: status, headers: headers) }
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: rows)))
    }

    /// The body as a JSON array (inserts) or object (updates) and the union of its keys, each a
    /// column of the table.
    static func bodyColumns(_ body: String, table: TableInfo, array: Bool) throws -> (String, [String]) {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(body.utf8)) else {
            throw APIError.badRequest("the body is not JSON: send an object\(array ? " or an array of objects" : "")")
        }
        let objects: [[String: Any]]
        var json = body
        if let object = parsed as? [String: Any] {
            objects = [object]
            if array { json = "[\(body)]" }
        } else if array, let list = parsed as? [[String: Any]], list.count == (parsed as? [Any])?.count {
            objects = list
        } else {
            throw APIError.badRequest("expected a JSON object\(array ? " or an array of objects" : "")")
        }
        var columns: [String] = []
        for object in objects {
            for key in object.keys.sorted() where !columns.contains(key) {
                guard table.column(key) != nil else {
                    throw APIError.badRequest(
                        "unknown column '\(key.prefix(60))' in table \(table.schema).\(table.name)")
                }
                columns.append(key)
            }
        }
        guard !columns.isEmpty else { throw APIError.badRequest("the body names no column") }
        return (json, columns)
    }
}
