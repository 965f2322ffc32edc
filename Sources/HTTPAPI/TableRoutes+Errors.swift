import HTTPTypes
import PostgresClient

/// PostgreSQL's refusals as HTTP answers, keeping their SQLSTATE.
extension TableRoutes {
    /// PostgreSQL's refusal as an HTTP status, with its SQLSTATE and message.
    func mapped(_ error: any Error, identity: ProxyIdentity, table: TableInfo) async -> any Error {
        if error is APIError { return error }
        guard let error = error as? PostgresError else { return error }
        guard let state = error.sqlState else {
            return APIError.unavailable("the database is not reachable: try again")
        }
        let status: HTTPResponse.Status
        switch state {
        case "42501": status = identity.anonymous ? .unauthorized : .forbidden
        case "42P01":
            await catalog.invalidate(schema: table.schema, name: table.name)
            status = .notFound
        case "42703":
            await catalog.invalidate(schema: table.schema, name: table.name)
            status = .badRequest
        case "23505", "23503", "40001", "40P01": status = .conflict
        case "57014": status = .gatewayTimeout
        default:
            if state.hasPrefix("08") || state.hasPrefix("57") {
                status = .serviceUnavailable
            } else if state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("42") || state.hasPrefix("P0")
                || state == "25006"
            {
                status = .badRequest
            } else {
                status = .internalServerError
            }
        }
        return APIError(status: status, code: "database", message: error.message, sqlState: state)
    }
}
