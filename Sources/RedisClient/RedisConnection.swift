import BridgeCore
import CHiredis
import Foundation

/// One hiredis connection. Not thread-safe: owned by a `RedisClient`, used on its queue only.
public final class RedisConnection {
    private(set) var context: UnsafeMutablePointer<redisContext>?
    let url: ServiceURL
    let timeout: Duration
    /// Shown in errors: the URL without its password.
    let description: String

    init(url: ServiceURL, timeout: Duration) {
        self.url = url
        self.timeout = timeout
        self.description = url.description
    }

    /// A connection for one reading thread (a message source), which owns it: it is used on
    /// that thread only. Connects on `connect()`.
    public convenience init(config: RedisSinkConfig) throws {
        self.init(url: try ServiceURL.required(config.url, for: "redis"), timeout: config.timeout)
    }

    deinit { disconnect() }

    public var isConnected: Bool { context != nil }

    public func disconnect() {
        if let context { redisFree(context) }
        context = nil
    }

    /// Connects, authenticates and selects the database of the URL.
    public func connect() throws {
        if context != nil { return }
        guard url.scheme == "redis" else {
            throw SinkError(
                sink: description,
                message: "TLS (rediss://) is not supported by the hiredis library of this build: use redis:// "
                    + "through a TLS tunnel (stunnel) or a private network", retriable: false)
        }
        let time = Self.timeval(timeout)
        guard let context = redisConnectWithTimeout(url.host, Int32(url.port ?? 6379), time) else {
            throw SinkError(sink: description, message: "cannot allocate a connection")
        }
        if context.pointee.err != 0 {
            let message = Self.errorText(context)
            redisFree(context)
            throw SinkError(sink: description, message: "cannot connect: \(message). Is Redis running and reachable?")
        }
        redisSetTimeout(context, time)
        redisEnableKeepAlive(context)
        self.context = context
        do {
            if let password = url.password {
                let args = url.user.map { ["AUTH", $0, password] } ?? ["AUTH", password]
                try checkSetupReply(try command(args), what: "AUTH", fix: "check the user and password in the URL")
            }
            if let db = url.path, db != "0" {
                try checkSetupReply(
                    try command(["SELECT", db]), what: "SELECT \(db)", fix: "check the database number")
            }
        } catch {
            disconnect()
            throw error
        }
    }

    private func checkSetupReply(_ reply: Reply, what: String, fix: String) throws {
        if case .error(let message) = reply {
            throw SinkError(sink: description, message: "\(what) failed: \(message): \(fix)", retriable: false)
        }
    }

    public enum Reply: Equatable, Sendable {
        case ok
        case error(String)
    }

    /// Runs one command and waits for its reply (setup and tests; not the hot path).
    public func command(_ args: [String]) throws -> Reply {
        try append(args)
        return try readReply()
    }

    /// Queues one command given as strings (see `append(_: inout CommandArena)`).
    func append(_ args: [String]) throws {
        var arena = CommandArena()
        arena.begin()
        for arg in args { arena.add(arg) }
        try append(&arena)
    }

    /// Queues a command in the output buffer (sent by the next `readReply`).
    public func append(_ arena: inout CommandArena) throws {
        guard let context else { throw SinkError(sink: description, message: "not connected") }
        let status = arena.withArguments { count, pointers, lengths in
            redisAppendCommandArgv(context, count, pointers, lengths)
        }
        if status != REDIS_OK { throw connectionLost() }
    }

    /// Reads the next reply (flushing queued commands first).
    public func readReply() throws -> Reply {
        guard let context else { throw SinkError(sink: description, message: "not connected") }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw connectionLost() }
        defer { freeReplyObject(raw) }
        let reply = raw.assumingMemoryBound(to: redisReply.self).pointee
        if reply.type == REDIS_REPLY_ERROR {
            let text = reply.str.map {
                String(decoding: UnsafeRawBufferPointer(start: $0, count: reply.len), as: UTF8.self)
            }
            return .error(text ?? "error")
        }
        return .ok
    }

    /// Reads a SCAN reply: the next cursor and the keys.
    public func readScanReply() throws -> (cursor: String, keys: [[UInt8]]) {
        guard let context else { throw SinkError(sink: description, message: "not connected") }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw connectionLost() }
        defer { freeReplyObject(raw) }
        let reply = raw.assumingMemoryBound(to: redisReply.self).pointee
        func bytes(_ element: redisReply) -> [UInt8] {
            guard let str = element.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: element.len))
        }
        guard reply.type == REDIS_REPLY_ARRAY, reply.elements == 2, let elements = reply.element,
            let cursor = elements[0], let keys = elements[1]
        else {
            let text = reply.type == REDIS_REPLY_ERROR ? bytes(reply) : []
            throw SinkError(
                sink: description, message: "SCAN failed: \(String(decoding: text, as: UTF8.self))", retriable: true)
        }
        var result: [[UInt8]] = []
        for index in 0..<keys.pointee.elements {
            if let key = keys.pointee.element[index] { result.append(bytes(key.pointee)) }
        }
        return (String(decoding: bytes(cursor.pointee), as: UTF8.self), result)
    }

    /// The connection is unusable after an I/O error: drop it so the next delivery reconnects.
    private func connectionLost() -> SinkError {
        let message = context.map(Self.errorText) ?? "not connected"
        disconnect()
        return SinkError(sink: description, message: "connection lost: \(message)")
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            let text = String(decoding: bytes[..<end], as: UTF8.self)
            return text.isEmpty ? "error \(context.pointee.err)" : text
        }
    }

    private static func timeval(_ duration: Duration) -> Foundation.timeval {
        let (seconds, attoseconds) = duration.components
        return Foundation.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}

/// Builds one command's arguments in reused buffers: no allocation per command once warm.
public struct CommandArena {
    public private(set) var bytes: [UInt8] = []
    private var ends: [Int] = []
    private var pointers: [UnsafePointer<CChar>?] = []
    private var lengths: [Int] = []

    public init() {}

    public mutating func begin() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }

    public mutating func add(_ text: String) {
        bytes.append(contentsOf: text.utf8)
        ends.append(bytes.count)
    }

    public mutating func add(_ literal: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        ends.append(bytes.count)
    }

    public mutating func add(_ raw: some Sequence<UInt8>) {
        bytes.append(contentsOf: raw)
        ends.append(bytes.count)
    }

    /// Appends to the current argument (then `close()` ends it).
    public mutating func write(_ body: (inout [UInt8]) -> Void) {
        body(&bytes)
    }

    public mutating func close() { ends.append(bytes.count) }

    public var argumentCount: Int { ends.count }

    /// Pointers into `bytes` are valid only inside `body` (hiredis copies the command).
    mutating func withArguments<T>(
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> T
    ) -> T {
        if pointers.count < ends.count {
            pointers = [UnsafePointer<CChar>?](repeating: nil, count: ends.count)
            lengths = [Int](repeating: 0, count: ends.count)
        }
        let ends = ends
        return bytes.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!)
            var start = 0
            for (index, end) in ends.enumerated() {
                pointers[index] = (base + start).assumingMemoryBound(to: CChar.self)
                lengths[index] = end - start
                start = end
            }
            return pointers.withUnsafeMutableBufferPointer { p in
                lengths.withUnsafeBufferPointer { l in body(Int32(ends.count), p.baseAddress!, l.baseAddress!) }
            }
        }
    }
}
