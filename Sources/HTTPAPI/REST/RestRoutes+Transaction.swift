import BridgeCore
import HTTPTypes
import Hummingbird
import PostgresClient

/// Every request runs in a transaction of its own, as the caller's role, opened and (when
/// nothing that follows can change the outcome) ended in the same round trip as its statements:
/// libpq's pipeline mode sends `BEGIN`, the role and settings with the role check, the
/// pre-request function, the statements and `COMMIT` at once.
extension TableRoutes {
    /// What a request's transaction sets before anything else runs.
    struct SessionSettings: Sendable {
        /// role, statement timeout (ms), request.jwt.claims, request.headers, request.cookies,
        /// request.method, request.path.
        var values: [String?]
        /// `api.rest_pre_request`, quoted.
        var preRequest: String?
        var role: String? { values.first ?? nil }
    }

    /// How the pipeline ends the transaction.
    enum Finish: Sendable {
        case commit
        case rollback
        /// Left open: the caller decides after reading the results (and then sends `COMMIT` or
        /// `ROLLBACK`, or drops the connection).
        case open

        /// The command that ends the transaction; nil when it is left open.
        var command: String? {
            switch self {
            case .commit: "COMMIT"
            case .rollback: "ROLLBACK"
            case .open: nil
            }
        }
    }

    /// The role and PostgREST's `request.*` settings for row-level security policies.
    func settings(_ identity: ProxyIdentity, _ request: Request) -> SessionSettings {
        var headers: [(String, String)] = []
        for field in request.headers {
            let name = field.name.canonicalName.lowercased()
            if let index = headers.firstIndex(where: { $0.0 == name }) {
                headers[index].1 += ", \(field.value)"
            } else {
                headers.append((name, field.value))
            }
        }
        var cookies: [(String, String)] = []
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty else { continue }
                if let index = cookies.firstIndex(where: { $0.0 == parts[0] }) {
                    cookies[index].1 = parts[1]
                } else {
                    cookies.append((parts[0], parts[1]))
                }
            }
        }
        return SessionSettings(
            values: [
                identity.role, "\(Int(statementTimeout.seconds * 1000))", identity.claims, Self.jsonObject(headers),
                Self.jsonObject(cookies), request.method.rawValue, request.uri.path,
            ],
            preRequest: preRequest.map { "\(SQL.identifier($0.schema)).\(SQL.identifier($0.name))" })
    }

    /// A JSON object of strings, keys sorted.
    static func jsonObject(_ pairs: [(String, String)]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (index, (key, value)) in pairs.sorted(by: { $0.0 < $1.0 }).enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            JSONBytes.appendString(key, into: &out)
            out.append(UInt8(ascii: ":"))
            JSONBytes.appendString(value, into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Sets the role and the `request.*` settings, and refuses roles that would escape
    /// row-level security or act as pgbridge itself: `none` (back to the login role), the login
    /// role, superusers, BYPASSRLS and REPLICATION roles, and owners of a relation the request
    /// reads (or members of its owner) when it has row-level security without FORCE (owners
    /// bypass it). The refusal is an error (a failed cast), so that nothing after it in the
    /// pipeline runs. `$8`/`$9`: the relations' schemas and names. Written so that the plan
    /// (prepared once, then generic) looks each relation up by index, whatever the number of
    /// tables: names compared as `name`, one correlated lookup per relation. Catalog objects are
    /// schema-qualified: a role's search_path cannot put a look-alike in front of them.
    static let requestSettingsSQL = """
        SELECT pg_catalog.set_config('role', $1::text, true), \
        pg_catalog.set_config('statement_timeout', $2::text, true), \
        pg_catalog.set_config('idle_in_transaction_session_timeout', $2::text, true), \
        pg_catalog.set_config('request.jwt.claims', $3::text, true), \
        pg_catalog.set_config('request.headers', $4::text, true), \
        pg_catalog.set_config('request.cookies', $5::text, true), \
        pg_catalog.set_config('request.method', $6::text, true), \
        pg_catalog.set_config('request.path', $7::text, true), \
        CASE WHEN coalesce(( \
            SELECT $1::name = session_user OR r.rolsuper OR r.rolbypassrls OR r.rolreplication \
                OR EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest($8::name[]), pg_catalog.unnest($9::name[])) AS t(schema_name, relation_name) \
                    WHERE (SELECT c.relrowsecurity AND NOT c.relforcerowsecurity \
                                  AND pg_catalog.pg_has_role($1::name, c.relowner, 'USAGE') \
                           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                           WHERE n.nspname = t.schema_name AND c.relname = t.relation_name)) \
            FROM pg_catalog.pg_roles r WHERE r.rolname = $1::name), true) \
        THEN CAST(\(refusalMarker) || session_user::text AS integer) END
        """

    /// Errors a statement can get from a plan whose parameter types were fixed before its
    /// tables changed: data exceptions (a value parsed as the old type), syntax or access rule
    /// violations (no operator for the new type), and "cached plan must not change result type".
    /// Not a refused privilege (42501), which no fresh plan changes.
    static func mayBeStalePlan(_ sqlState: String?) -> Bool {
        guard let sqlState, sqlState != "42501" else { return false }
        return sqlState == "0A000" || sqlState.hasPrefix("22") || sqlState.hasPrefix("42")
    }

    /// Starts the text of the refusal's error (the session user keeps the cast from being
    /// folded into a constant, and so raised, when the statement is planned).
    static let refusalMarker = "'pgbridge refuses this role; login role '"

    /// Runs `statements` in the request's transaction as the caller's role, in one round trip,
    /// and returns their results. Reads see one snapshot (their row count and rows agree).
    static func transaction(
        _ connection: SQLConnection, _ session: SessionSettings, relations: [TableInfo], readOnly: Bool,
        _ statements: [SQLStatement], finish: Finish
    ) throws -> [SQLResult] {
        var pipeline: [PGConnection.PipelinedStatement] = [
            readOnly
                ? .init("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", preparedName: "pgbridge_begin_read")
                : .init("BEGIN", preparedName: "pgbridge_begin"),
            .init(
                requestSettingsSQL,
                session.values + [
                    SQL.textArray(relations.map(\.schema)), SQL.textArray(relations.map(\.name)),
                ], preparedName: "pgbridge_request_settings"),
        ]
        if let function = session.preRequest { pipeline.append(.init("SELECT \(function)()")) }
        let first = pipeline.count
        pipeline += statements.map { .init($0.text, $0.parameters, cached: $0.cacheable) }
        switch finish {
        case .commit: pipeline.append(.init("COMMIT", preparedName: "pgbridge_commit"))
        case .rollback: pipeline.append(.init("ROLLBACK", preparedName: "pgbridge_rollback"))
        case .open: break
        }
        func run() throws -> [SQLResult] {
            Array(try connection.pipeline(pipeline)[first..<(first + statements.count)])
        }
        do {
            do {
                return try run()
            } catch let failure as PGConnection.PipelineFailure
                where failure.ranEarlierPreparedPlan && mayBeStalePlan(failure.error.sqlState)
            {
                // The statement's plan may have been prepared on this connection before its
                // tables changed (a migration changed a column's type, so a parameter typed for
                // the old column no longer fits). Nothing was committed: the transaction is
                // rolled back, and run once more only when a fresh plan of the statement takes
                // other types, so that a genuine error (a bad value) runs nothing twice. The
                // request's other cached statements are prepared afresh too: they are as old.
                try connection.execute("ROLLBACK")
                guard try connection.connection.freshPlanDiffers(from: failure) else { throw failure }
                let failed = pipeline[failure.index].sql
                connection.connection.forgetCachedStatements(
                    pipeline.filter { $0.cached && $0.sql != failed }.map(\.sql))
                return try run()
            }
        } catch let failure as PGConnection.PipelineFailure {
            let role = session.role.map { String($0.prefix(63)) } ?? ""
            guard failure.index == 1 else { throw failure.error }
            switch failure.error.sqlState {
            case "22023", "42704":
                // set_config('role', …) of a role that does not exist (invalid_parameter_value);
                // the lease drops the aborted transaction.
                throw APIError.forbidden(
                    "role \(role) does not exist: the token's role claim must name a database role")
            case "22P02" where failure.error.message.contains("pgbridge refuses this role"):
                throw APIError.forbidden(
                    "role \(role) may not be used through the REST proxy (it is pgbridge's own login, a superuser, has BYPASSRLS or REPLICATION, or owns \(relations.map(\.display).joined(separator: " or ")), whose row-level security it would bypass: ALTER TABLE … FORCE ROW LEVEL SECURITY, or use another role)"
                )
            default:
                throw failure.error
            }
        }
    }
}
