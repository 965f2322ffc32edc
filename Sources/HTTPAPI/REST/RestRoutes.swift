import BridgeCore
import Foundation
import HTTPTypes
import Hummingbird
import PostgresClient

/// The REST proxy, PostgREST's API over tables and views: mounted at `api.rest_path`
/// (`/v1/tables` by default), where `/{table}` is a table of the default schema (or of the one
/// `Accept-Profile` / `Content-Profile` picks among `api.rest_schemas`) and pgbridge's own
/// `/{schema}.{table}` names any schema.
extension APIServer {
    static let commitLSNHeader = HTTPField.Name("X-Commit-LSN")!
    static let preferHeader = HTTPField.Name("Prefer")!
    static let preferenceAppliedHeader = HTTPField.Name("Preference-Applied")!
    static let acceptProfileHeader = HTTPField.Name("Accept-Profile")!
    static let contentProfileHeader = HTTPField.Name("Content-Profile")!
    static let rangeHeader = HTTPField.Name("Range")!
    static let rangeUnitHeader = HTTPField.Name("Range-Unit")!
    static let fetchRows = 1000

    func addTableRoutes(to router: Router<BasicRequestContext>, tables: TableRoutes) {
        var mounts = ["/v1/tables"]
        let custom = config.restPath == "/" ? "" : config.restPath
        if custom != "/v1/tables" { mounts.append(custom) }
        for mount in mounts {
            let root = mount.isEmpty ? "/" : mount
            router.get(RouterPath(root)) { request, _ in
                try await tables.guarded { try await tables.openAPI(request, mount: root) }
            }
            let path = RouterPath(mount + "/{table}")
            router.get(path) { request, context in
                try await tables.guarded {
                    if (request.headers[.accept] ?? "").contains("text/event-stream") {
                        return try await liveQuery(request, context, tables: tables)
                    }
                    return try await tables.read(request, context)
                }
            }
            router.head(path) { request, context in
                try await tables.guarded { try await tables.read(request, context, head: true) }
            }
            router.post(path) { request, context in
                try await tables.guarded { try await tables.write(.insert, request, context) }
            }
            router.patch(path) { request, context in
                try await tables.guarded { try await tables.write(.update, request, context) }
            }
            router.delete(path) { request, context in
                try await tables.guarded { try await tables.write(.delete, request, context) }
            }
            let rpc = RouterPath(mount + "/rpc/{function}")
            router.get(rpc) { request, context in
                try await tables.guarded { try await tables.rpc(request, context, method: .get) }
            }
            router.head(rpc) { request, context in
                try await tables.guarded { try await tables.rpc(request, context, method: .head) }
            }
            router.post(rpc) { request, context in
                try await tables.guarded { try await tables.rpc(request, context, method: .post) }
            }
            router.put(path) { _, _ -> Response in
                throw RestError(
                    status: .methodNotAllowed, code: "PGRST117", message: "Unsupported HTTP method: PUT",
                    hint: "replace rows with POST and Prefer: resolution=merge-duplicates",
                    headers: [.allow: "GET, HEAD, POST, PATCH, DELETE"])
            }
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
    /// Schemas a profile header may pick; the first is the default.
    var schemas: [String] = ["public"]
    /// `Prefer: tx=rollback` is honoured (`api.rest_allow_tx_override`).
    var allowTransactionOverride = false
    /// `api.rest_pre_request`.
    var preRequest: (schema: String, name: String)?

    /// Runs a handler, answering every refusal in PostgREST's error shape.
    func guarded(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let error as APIError {
            throw RestError(error)
        }
    }

    /// The table the path names: `schema.table`, or `table` in the profile's schema.
    func table(_ request: Request, _ context: BasicRequestContext, write: Bool) async throws -> TableInfo {
        let raw = try context.parameters.require("table")
        let text = RestQuery.decodeComponent(Substring(raw), plusIsSpace: false)
        guard let (named, name) = Self.split(text) else {
            throw RestError.parse("expected /{table} or /{schema}.{table}, got '\(text.prefix(80))'")
        }
        let schema = try named ?? profileSchema(request, write: write)
        if TableCatalog.isHidden(schema: schema) {
            throw RestError(
                status: .notFound, code: "PGRST205",
                message:
                    "the schema \(schema) is never served by the REST proxy (pgbridge's own objects and the system catalogs)"
            )
        }
        guard schemas.contains(schema) else {
            throw RestError(
                status: .notAcceptable, code: "PGRST106",
                message: "The schema must be one of the following: \(schemas.joined(separator: ", "))",
                hint: "add \(schema) to api.rest_schemas to serve its tables")
        }
        do {
            guard let table = try await catalog.table(schema: schema, name: name) else {
                throw RestError.unknownTable(schema, name)
            }
            return table
        } catch let error as PostgresError {
            throw Self.catalogError(error)
        }
    }

    /// A failed catalog lookup: the database is down (PGRST000) or refused the query (PGRST002).
    static func catalogError(_ error: PostgresError) -> RestError {
        guard error.code == .queryFailed else {
            return RestError(
                status: .serviceUnavailable, code: "PGRST000", message: "the database is not reachable: try again")
        }
        return RestError(
            status: .serviceUnavailable, code: "PGRST002",
            message: "Could not query the database for the schema cache: \(error.primaryMessage ?? error.message)",
            details: error.sqlState.map { "SQLSTATE \($0)" })
    }

    /// `schema.table` → (schema, table); `table` → (nil, table). Double quotes keep dots.
    static func split(_ text: String) -> (String?, String)? {
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
        guard !quoted,
            parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 && !$0.unicodeScalars.contains { $0.value < 32 } })
        else { return nil }
        switch parts.count {
        case 1: return (nil, parts[0])
        case 2: return (parts[0], parts[1])
        default: return nil
        }
    }

    /// A pooled session, or 503 when every one stays busy.
    func lease() async throws -> SQLLease {
        guard let lease = await pool.lease(timeout: .seconds(10)) else { throw RestError.busy }
        return lease
    }

    /// PostgreSQL's refusal in PostgREST's shape and status, keeping its SQLSTATE.
    func mapped(_ error: any Error, identity: ProxyIdentity, table: TableInfo) async -> any Error {
        if let error = error as? APIError { return RestError(error) }
        guard let error = error as? PostgresError else { return error }
        guard let state = error.sqlState else {
            return RestError(
                status: .serviceUnavailable, code: "PGRST001", message: "the database is not reachable: try again")
        }
        if state == "42P01" || state == "42703" {
            await catalog.invalidate(schema: table.schema, name: table.name)
        }
        return RestError.database(
            sqlState: state, message: error.primaryMessage ?? error.message, details: error.detail, hint: error.hint,
            anonymous: identity.anonymous)
    }
}
