import BridgeCore
import CHiredis

/// A Redis reply as a value tree (RESP2), for commands whose answer is read (XRANGE, XADD).
public enum RedisValue: Equatable, Sendable {
    case null
    case integer(Int64)
    case string([UInt8])
    case error(String)
    case array([RedisValue])

    public var text: String? {
        if case .string(let bytes) = self { return String(decoding: bytes, as: UTF8.self) }
        return nil
    }
}

extension RedisConnection {
    /// Runs one command and returns its whole reply.
    public func query(_ args: [String]) throws -> RedisValue {
        try append(args)
        return try readValue()
    }

    public func readValue() throws -> RedisValue {
        guard isConnected else { throw SinkError(sink: description, message: "not connected") }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            disconnect()
            throw SinkError(sink: description, message: "connection lost")
        }
        defer { freeReplyObject(raw) }
        return Self.value(raw.assumingMemoryBound(to: redisReply.self).pointee)
    }

    static func value(_ reply: redisReply) -> RedisValue {
        func bytes() -> [UInt8] {
            guard let str = reply.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: reply.len))
        }
        switch reply.type {
        case REDIS_REPLY_STRING, REDIS_REPLY_STATUS:
            return .string(bytes())
        case REDIS_REPLY_INTEGER:
            return .integer(reply.integer)
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            for index in 0..<reply.elements {
                elements.append(reply.element[index].map { value($0.pointee) } ?? .null)
            }
            return .array(elements)
        default:
            return .null
        }
    }
}
