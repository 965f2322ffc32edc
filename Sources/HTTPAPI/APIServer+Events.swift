import BridgeCore
import BridgeRuntime
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Pipeline
import ServiceLifecycle

extension APIServer {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
    static let keepaliveInterval: Duration = .seconds(15)

    func addEventRoutes(to router: Router<BasicRequestContext>) {
        router.get("/v1/pipes/{name}/events") { request, context in
            try requireAdmin(request)
            let (buffer, filter) = try await eventSource(request, context)
            let query = request.uri.queryParameters
            let limit =
                try query.get("limit").map { text -> Int in
                    guard let value = Int(text), (1...10_000).contains(value) else {
                        throw APIError.badRequest("limit must be a number from 1 to 10000, got '\(text)'")
                    }
                    return value
                } ?? 100
            let after = query.get("after").flatMap { $0.isEmpty ? nil : $0 }
            let start = try after.map { try position(in: buffer, after: $0, default: 0) }
            let page = try read(buffer, from: start, limit: limit, filter: filter)
            var body = ByteBuffer(string: "{\"events\":[")
            for (index, event) in page.events.enumerated() {
                if index > 0 { body.writeString(",") }
                body.writeBytes(event.body)
            }
            body.writeString("],\"next\":")
            // The last event looked at, matching or not: a rare filter's cursor stays fresh.
            if let last = page.lastScannedID {
                body.writeString("\"")
                body.writeString(Self.jsonEscaped(last))
                body.writeString("\"")
            } else if let after {
                body.writeString("\"\(Self.jsonEscaped(after))\"")
            } else {
                body.writeString("null")
            }
            body.writeString("}")
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
        }
        router.get("/v1/pipes/{name}/stream") { request, context in
            try requireAdmin(request)
            let (buffer, filter) = try await eventSource(request, context)
            let resume = request.headers[Self.lastEventID] ?? request.uri.queryParameters.get("after")
            let start = try self.position(in: buffer, after: resume, default: buffer.endPosition)
            let changes = buffer.changes()
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: ": pgbridge change stream\n\n"))
                    try await Self.follow(buffer, from: start, filter: filter, changes: changes, writer: &writer) {
                        events in
                        var chunk = ByteBuffer()
                        for event in events {
                            chunk.writeString("id: ")
                            chunk.writeString(event.id)
                            chunk.writeString("\nevent: change\ndata: ")
                            chunk.writeBytes(event.body)
                            chunk.writeString("\n\n")
                        }
                        return chunk
                    }
                    try await writer.finish(nil)
                })
        }
    }

    /// Follows a pipe's buffer from `start` until the pipe is dropped or pgbridge shuts down:
    /// each page of (filtered) events goes through `render` to the stream, a comment keeps an
    /// idle stream open every `keepaliveInterval`, and a client that fell behind the buffer gets
    /// `event: gone`.
    static func follow(
        _ buffer: PipeEventBuffer, from start: UInt64, filter: PipeEventBuffer.Filter,
        changes: AsyncStream<Void>, writer: inout any ResponseBodyWriter,
        render: ([PipeEventBuffer.Event]) async throws -> ByteBuffer
    ) async throws {
        var position = start
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            // true = the keepalive timer ticked, false = new events.
            let (wakeups, wake) = AsyncStream<Bool>.makeStream(bufferingPolicy: .bufferingNewest(2))
            tasks.addTask {
                for await _ in changes { wake.yield(false) }
                wake.finish()  // the pipe was dropped
            }
            tasks.addTask {
                // Ends the stream when pgbridge shuts down (the server waits for open requests).
                try? await gracefulShutdown()
                wake.finish()
            }
            tasks.addTask {
                while true {
                    try await Task.sleep(for: Self.keepaliveInterval)
                    wake.yield(true)
                }
            }
            var wroteSinceTick = true  // the stream's opening comment
            wake.yield(false)
            for await tick in wakeups {
                while true {
                    let page: PipeEventBuffer.Page
                    do {
                        page = try buffer.read(from: position, limit: 1000, filter: filter)
                    } catch {
                        try await writer.write(
                            ByteBuffer(
                                string:
                                    "event: gone\ndata: {\"message\":\"this client fell behind the pipe's buffer: reconnect without Last-Event-ID\"}\n\n"
                            ))
                        tasks.cancelAll()
                        return
                    }
                    position = page.next
                    if page.events.isEmpty { break }
                    let chunk = try await render(page.events)
                    if chunk.readableBytes > 0 {
                        try await writer.write(chunk)
                        wroteSinceTick = true
                    }
                }
                if tick {
                    // At least one write per interval: idle proxies keep the stream.
                    if !wroteSinceTick { try await writer.write(ByteBuffer(string: ": keepalive\n\n")) }
                    wroteSinceTick = false
                }
            }
            tasks.cancelAll()
        }
    }

    /// The pipe's buffer and the `table`/`op` filters of the request.
    func eventSource(_ request: Request, _ context: BasicRequestContext) async throws -> (
        PipeEventBuffer, PipeEventBuffer.Filter
    ) {
        let name = try pipeName(context)
        guard await supervisor.status(name) != nil else { throw APIError.notFound("no pipe named \(name)") }
        guard let buffer = await supervisor.buffer(name) else {
            throw APIError.conflict(
                "pipe \(name) keeps no events: set api.buffer_events above 0 (and start the pipe) to pull its changes")
        }
        let query = request.uri.queryParameters
        let op = query.get("op")
        let ops = ["insert", "update", "delete", "truncate", "read", "message", "chunk_dropped"]
        if let op, !ops.contains(op) {
            throw APIError.badRequest("op must be one of \(ops.joined(separator: ", ")), got '\(op.prefix(40))'")
        }
        return (buffer, PipeEventBuffer.Filter(table: query.get("table"), op: op))
    }

    func position(in buffer: PipeEventBuffer, after id: String?, default start: UInt64) throws -> UInt64 {
        guard let id, !id.isEmpty else { return start }
        do {
            return try buffer.position(after: id)
        } catch {
            throw gone(id, error)
        }
    }

    func read(_ buffer: PipeEventBuffer, from position: UInt64?, limit: Int, filter: PipeEventBuffer.Filter) throws
        -> PipeEventBuffer.Page
    {
        do {
            return try buffer.read(from: position, limit: limit, filter: filter)
        } catch {
            throw gone(nil, error)
        }
    }

    func gone(_ id: String?, _ error: PipeEventBuffer.ReadError) -> APIError {
        let oldest: String?
        switch error {
        case .gone(let id): oldest = id
        }
        let what = id.map { "event \($0.prefix(80)) is" } ?? "the requested events are"
        return APIError(
            status: .gone, code: "gone",
            message:
                "\(what) no longer in the pipe's buffer (oldest buffered: \(oldest ?? "none")): start again without after, or use a sink for complete history"
        )
    }

    static func jsonEscaped(_ text: String) -> String {
        var bytes: [UInt8] = []
        JSONBytes.appendEscaped(text, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
