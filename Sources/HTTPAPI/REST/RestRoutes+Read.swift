import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PostgresClient

/// GET and HEAD: rows as a JSON array, one object, or CSV; `Content-Range` on every answer;
/// `Prefer: count=…`; results larger than one fetch streamed from a cursor.
extension TableRoutes {
    /// What the `Accept` header asks for.
    enum Representation: Equatable {
        case array(stripNulls: Bool)
        case object(stripNulls: Bool)
        case csv

        static func negotiate(_ accept: String?) throws -> Representation {
            guard let accept, !accept.isEmpty else { return .array(stripNulls: false) }
            for raw in accept.split(separator: ",") {
                let parts = raw.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                let stripNulls = parts.dropFirst().contains("nulls=stripped")
                switch parts.first ?? "" {
                case "application/json", "*/*", "application/*", "application/vnd.pgrst.array+json":
                    return .array(stripNulls: stripNulls)
                case "application/vnd.pgrst.object+json", "application/vnd.pgrst.object":
                    return .object(stripNulls: stripNulls)
                case "text/csv", "text/*":
                    return .csv
                default:
                    continue
                }
            }
            throw RestError(
                status: .notAcceptable, code: "PGRST107",
                message: "None of these media types are available: \(accept.prefix(200))",
                hint:
                    "the REST proxy answers application/json, application/vnd.pgrst.object+json and text/csv")
        }
    }

    /// `Range: 0-9` (items): the first and last row wanted.
    static func range(_ header: String?) throws -> (first: Int, last: Int?)? {
        guard let header, !header.isEmpty else { return nil }
        let text = header.hasPrefix("items=") ? String(header.dropFirst(6)) : header
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        // Row numbers beyond 10^12 are refused: no table has them, and sums must not overflow.
        guard parts.count == 2, let first = Int(parts[0]), (0...1_000_000_000_000).contains(first),
            parts[1].isEmpty || Int(parts[1]).map({ $0 <= 1_000_000_000_000 }) == true
        else {
            throw RestError.range("Range takes first-last row numbers, e.g. Range: 0-9")
        }
        if parts[1].isEmpty { return (first, nil) }
        guard let last = Int(parts[1]), last >= first else {
            throw RestError.range("the range's last row comes before its first")
        }
        return (first, last)
    }

    func read(_ request: Request, _ context: BasicRequestContext, head: Bool = false) async throws -> Response {
        // Who asks comes first: the catalog answers nothing to an unauthenticated caller.
        let identity = try await auth.identify(authorization: request.headers[.authorization], write: false)
        let table = try await table(request, context, write: false)
        let query = try RestQuery(pairs: RestQuery.pairs(request.uri.query), table: table)
        let representation = try Representation.negotiate(request.headers[.accept])
        let preferences = try RestPreferences(request.headers[values: APIServer.preferHeader]).checkedStrictness()
        let page = query.page(range: try Self.range(request.headers[APIServer.rangeHeader]))
        let statement: SQLStatement
        let embeds: [ResolvedEmbed]
        let timeBucket: Bool
        do {
            let catalog = catalog
            let schemas = schemas
            embeds = try await query.resolveEmbeds(table) { schema, name in
                // Only tables of the exposed schemas are embedded.
                schemas.contains(schema) ? try await catalog.table(schema: schema, name: name) : nil
            }
            timeBucket = try await catalog.hasTimescaleDB()
            statement = try query.selectStatement(table, timeBucket: timeBucket, page: page, embeds: embeds)
        } catch let error as PostgresError {
            throw Self.catalogError(error)
        }
        return try await respond(
            ReadPlan(
                statement: statement, counted: query.countStatement(table, embeds: embeds, timeBucket: timeBucket),
                page: page,
                representation: representation, preferences: preferences, table: table,
                relations: embeds.flatMap(\.relations)),
            identity: identity, request: request, head: head)
    }

    /// A read ready to run: a table's rows or a function's result.
    struct ReadPlan: Sendable {
        var statement: SQLStatement
        var counted: SQLStatement
        var page: RestQuery.Page
        var representation: Representation
        var preferences: RestPreferences
        var table: TableInfo
        /// How one row becomes JSON (a function's scalar result: the value, not an object).
        var rowJSON = "row_to_json(pgrst_row)"
        /// Writes allowed (an RPC call of a volatile function by POST): the statement then runs
        /// exactly once (no separate count, never streamed), before anything is answered.
        var readOnly = true
        /// `Prefer: tx=rollback` honoured: the transaction is rolled back at the end.
        var rollback = false
        /// Relations the statement reads besides the table (embedded resources, junctions).
        var relations: [TableInfo] = []
    }

    /// Runs a read in the caller's role and answers it.
    func respond(_ plan: ReadPlan, identity: ProxyIdentity, request: Request, head: Bool) async throws -> Response {
        let (statement, counted, page, representation, preferences, table) = (
            plan.statement, plan.counted, plan.page, plan.representation, plan.preferences, plan.table
        )
        let readOnly = plan.readOnly
        let relations = (table.source == nil ? [table] : []) + plan.relations
        let wrapped: String
        switch representation {
        case .csv: wrapped = statement.text
        case .array(let strip), .object(let strip):
            let row = strip ? "json_strip_nulls(\(plan.rowJSON))" : plan.rowJSON
            wrapped = "SELECT \(row)::text FROM (\(statement.text)) pgrst_row"
        }
        let settings = settings(identity, request)
        let csv = representation == .csv
        // A result that fits one fetch is read and committed in the first round trip; a
        // larger one is counted (its Content-Range needs the number), then streamed from a
        // cursor 1,000 rows at a time. Both statements see the transaction's one snapshot.
        let mode: ReadMode
        if case .object = representation {
            mode = .singular
        } else if !readOnly || (page.limit.map { $0 <= APIServer.fetchRows } ?? false) {
            mode = .bounded
        } else if preferences.count == .exact || settings.preRequest != nil {
            // A probe that overflows runs its transaction again: not with a count that may be
            // costly, nor with a pre-request function that PostgREST calls once per request.
            mode = .cursor
        } else {
            mode = .probe
        }
        let read = ReadTransaction(
            settings: settings, relations: relations,
            rows: SQLStatement(text: wrapped, parameters: statement.parameters),
            counted: counted, counting: readOnly ? preferences.count : nil, mode: mode, csv: csv, readOnly: readOnly,
            rollback: plan.rollback,
            totalFromRows: !readOnly && preferences.count != nil && page.offset == 0 && page.limit == nil)
        let lease = try await lease()
        let session = lease.session
        let first: Chunk
        let total: Int?
        do {
            (first, total) = try await session.run { connection in try Self.runRead(connection, read) }
        } catch {
            lease.release(committed: false)
            throw await mapped(error, identity: identity, table: table)
        }
        // The rows this answer holds: known now when complete, else from the count.
        let rows =
            first.complete
            ? first.rows : max(0, min((total ?? 0) - page.offset, page.limit ?? Int.max))
        // The total is shown (and decides 206 and 416) only when the request asked for a count.
        let reported = preferences.count == nil ? nil : total
        var headers: HTTPFields = [:]
        headers[.contentRange] = Self.contentRange(offset: page.offset, rows: rows, total: reported)
        if let total = reported, page.offset > total {
            lease.release(committed: first.complete)
            throw RestError.range(
                "An offset of \(page.offset) was requested, but there are only \(total) rows.",
                headers: [.contentRange: "*/\(total)"])
        }
        let status: HTTPResponse.Status = reported.map { rows < $0 ? .partialContent : .ok } ?? .ok
        switch representation {
        case .csv: headers[.contentType] = "text/csv; charset=utf-8"
        case .object: headers[.contentType] = "application/vnd.pgrst.object+json; charset=utf-8"
        case .array: headers[.contentType] = "application/json; charset=utf-8"
        }
        if let count = preferences.count { headers[APIServer.preferenceAppliedHeader] = "count=\(count.rawValue)" }
        if head {
            if !first.complete {
                _ = try? await session.run { connection in try connection.execute("COMMIT") }
            }
            lease.release(committed: true)
            return Response(status: status, headers: headers)
        }
        let isArray = if case .array = representation { true } else { false }
        if first.complete {
            lease.release(committed: true)
            var body = ByteBuffer()
            body.reserveCapacity(first.bytes.count + 2)
            if isArray { body.writeString("[") }
            body.writeBytes(first.bytes)
            if isArray { body.writeString("]") }
            return Response(status: status, headers: headers, body: .init(byteBuffer: body))
        }
        return Response(
            status: status, headers: headers,
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

    /// `first-last/total`, `*/total` without rows; `*` for an unknown total.
    static func contentRange(offset: Int, rows: Int, total: Int?) -> String {
        let totalText = total.map(String.init) ?? "*"
        return rows > 0 ? "\(offset)-\(offset + rows - 1)/\(totalText)" : "*/\(totalText)"
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
}
