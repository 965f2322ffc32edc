import Foundation
import HTTPTypes
import Hummingbird

/// An error answer: `{"error": {"code": "...", "message": "..."}}` (plus PostgreSQL's SQLSTATE
/// when the database refused). Messages never hold secrets.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    var sqlState: String? = nil
    var headers: HTTPFields = [:]

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var error: [String: Any] = ["code": code, "message": message]
        if let sqlState { error["sqlstate"] = sqlState }
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: JSONBody.encode(["error": error])))
    }

    static func badRequest(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "bad_request", message: message)
    }
    static func notFound(_ message: String) -> APIError {
        APIError(status: .notFound, code: "not_found", message: message)
    }
    static func conflict(_ message: String) -> APIError {
        APIError(status: .conflict, code: "conflict", message: message)
    }
    static func unauthorized(_ message: String) -> APIError {
        APIError(
            status: .unauthorized, code: "unauthorized", message: message,
            headers: [.wwwAuthenticate: "Bearer realm=\"pgbridge\""])
    }
    static func forbidden(_ message: String) -> APIError {
        APIError(status: .forbidden, code: "forbidden", message: message)
    }
    static func unavailable(_ message: String) -> APIError {
        APIError(status: .serviceUnavailable, code: "unavailable", message: message)
    }
}

/// Turns Hummingbird's own errors (404 for unknown routes, 413 for large bodies) and unexpected
/// errors into the same JSON error shape.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as RestError {
            throw error
        } catch let error as HTTPError {
            let message: String
            switch error.status {
            case .notFound: message = "no route \(request.method) \(request.uri.path): see /v1/openapi.json"
            default: message = error.body ?? error.status.reasonPhrase
            }
            throw APIError(
                status: error.status,
                code: error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_"), message: message)
        } catch let error as any HTTPResponseError {
            throw APIError(
                status: error.status,
                code: error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_"),
                message: error.status == .contentTooLarge
                    ? "request body too large (api.max_body_bytes)" : error.status.reasonPhrase)
        } catch {
            // The detail may name hosts, users or files: it goes to the log, the caller gets an id.
            let requestID = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            context.logger.error(
                "\(request.method) \(request.uri.path) failed: \(error)", metadata: ["request_id": "\(requestID)"])
            throw APIError(
                status: .internalServerError, code: "internal",
                message: "internal error (request id \(requestID)): pgbridge's log has the details",
                headers: [HTTPField.Name("X-Request-Id")!: requestID])
        }
    }
}

/// JSON bodies of management answers (not a hot path: Foundation's serializer is fine here).
enum JSONBody {
    static func encode(_ object: Any) -> ByteBuffer {
        let options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: options)) ?? Data("{}".utf8)
        return ByteBuffer(bytes: data)
    }

    static func response(_ object: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: encode(object)))
    }
}
