import NIOCore

/// A message from the client (frontend), decoded from the wire.
public enum FrontendMessage: Sendable, Equatable {
    /// StartupMessage, protocol 3.0: `user`, `database`, `application_name`, … .
    case startup(parameters: [String: String])
    /// SSLRequest: answered with `N` (no TLS), then the client sends its startup message.
    case sslRequest
    /// GSSENCRequest: answered with `N` as well.
    case gssEncryptionRequest
    /// CancelRequest: cancel the running query of the session with this key, then close.
    case cancel(processID: Int32, secretKey: Int32)
    /// `p`: a password, SASLInitialResponse or SASLResponse; what it is depends on the
    /// authentication exchange in progress.
    case authentication(ByteBuffer)
    case query(String)
    case parse(name: String, query: String, parameterTypes: [Int32])
    case bind(
        portal: String, statement: String, parameterFormats: [Int16], parameters: [ByteBuffer?], resultFormats: [Int16])
    case describe(kind: UInt8, name: String)
    case execute(portal: String, maxRows: Int32)
    case close(kind: UInt8, name: String)
    case sync
    case flush
    case terminate
    /// CopyData/CopyDone/CopyFail and other messages pgbridge does not serve.
    case unsupported(type: UInt8)
}

/// Why bytes from a client cannot be decoded. The connection is answered with an
/// ErrorResponse (08P01) and closed.
public struct ProtocolViolation: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Splits the byte stream into frontend messages: the untyped startup packets first (possibly
/// preceded by SSLRequest/GSSENCRequest), then typed messages (`type byte + Int32 length`).
public struct FrontendDecoder: ByteToMessageDecoder {
    public typealias InboundOut = FrontendMessage

    /// The largest message accepted (a query text or a Bind with its values).
    public static let maximumMessageLength = 64 << 20
    static let maximumStartupLength = 10_000

    private var awaitingStartup = true
    /// Password messages so far: a SCRAM login takes two. Until then (and for any password
    /// message) a message may be 10 kB at most, so that clients that have not logged in
    /// cannot make the server buffer megabytes.
    private var passwordMessages = 0
    static let maximumUnauthenticatedLength = 10_000

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let message = try decodeMessage(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(message))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        try decode(context: context, buffer: &buffer)
    }

    /// Decodes one message from the front of `buffer`, or returns nil when it is not complete.
    public mutating func decodeMessage(_ buffer: inout ByteBuffer) throws(ProtocolViolation) -> FrontendMessage? {
        if awaitingStartup {
            guard let length: Int32 = buffer.getInteger(at: buffer.readerIndex) else { return nil }
            guard length >= 8, Int(length) <= Self.maximumStartupLength else {
                throw ProtocolViolation("invalid length of startup packet: \(length)")
            }
            guard buffer.readableBytes >= Int(length) else { return nil }
            var body = buffer.readSlice(length: Int(length))!
            body.moveReaderIndex(forwardBy: 4)
            let message = try Self.decodeStartup(&body)
            if case .startup = message { awaitingStartup = false }
            return message
        }
        guard buffer.readableBytes >= 5, let type: UInt8 = buffer.getInteger(at: buffer.readerIndex),
            let length: Int32 = buffer.getInteger(at: buffer.readerIndex + 1)
        else { return nil }
        let limit =
            passwordMessages < 2 || type == UInt8(ascii: "p")
            ? Self.maximumUnauthenticatedLength : Self.maximumMessageLength
        guard length >= 4, Int(length) <= limit else {
            throw ProtocolViolation("invalid message length \(length) for message type \(Self.describe(type))")
        }
        guard buffer.readableBytes >= Int(length) + 1 else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        var body = buffer.readSlice(length: Int(length) - 4)!
        if type == UInt8(ascii: "p") { passwordMessages += 1 }
        return try Self.decodeTyped(type, &body)
    }

    static func describe(_ type: UInt8) -> String {
        (32..<127).contains(type) ? "'\(Character(UnicodeScalar(type)))'" : "0x\(String(type, radix: 16))"
    }

    static func decodeStartup(_ body: inout ByteBuffer) throws(ProtocolViolation) -> FrontendMessage {
        guard let code: Int32 = body.readInteger() else { throw ProtocolViolation("truncated startup packet") }
        switch code {
        case 80_877_103: return .sslRequest
        case 80_877_104: return .gssEncryptionRequest
        case 80_877_102:
            guard let pid: Int32 = body.readInteger(), let key: Int32 = body.readInteger() else {
                throw ProtocolViolation("truncated cancel request")
            }
            return .cancel(processID: pid, secretKey: key)
        case 196_608:
            var parameters: [String: String] = [:]
            while true {
                let name = try readCString(&body, "startup packet")
                if name.isEmpty { break }
                parameters[name] = try readCString(&body, "startup packet")
            }
            return .startup(parameters: parameters)
        default:
            throw ProtocolViolation(
                "unsupported frontend protocol \(code >> 16).\(code & 0xFFFF): server supports 3.0")
        }
    }

    static func decodeTyped(_ type: UInt8, _ body: inout ByteBuffer) throws(ProtocolViolation) -> FrontendMessage {
        switch type {
        case UInt8(ascii: "p"):
            return .authentication(body)
        case UInt8(ascii: "Q"):
            return .query(try readCString(&body, "Query"))
        case UInt8(ascii: "P"):
            let name = try readCString(&body, "Parse")
            let query = try readCString(&body, "Parse")
            let count = try readInt16(&body, "Parse")
            guard count >= 0 else { throw ProtocolViolation("negative parameter count in Parse") }
            var types: [Int32] = []
            for _ in 0..<count {
                guard let oid: Int32 = body.readInteger() else { throw ProtocolViolation("truncated Parse message") }
                types.append(oid)
            }
            return .parse(name: name, query: query, parameterTypes: types)
        case UInt8(ascii: "B"):
            return try decodeBind(&body)
        case UInt8(ascii: "D"), UInt8(ascii: "C"):
            guard let kind: UInt8 = body.readInteger(), kind == UInt8(ascii: "S") || kind == UInt8(ascii: "P") else {
                throw ProtocolViolation("\(type == UInt8(ascii: "D") ? "Describe" : "Close") needs 'S' or 'P'")
            }
            let name = try readCString(&body, "Describe")
            return type == UInt8(ascii: "D") ? .describe(kind: kind, name: name) : .close(kind: kind, name: name)
        case UInt8(ascii: "E"):
            let portal = try readCString(&body, "Execute")
            guard let rows: Int32 = body.readInteger() else { throw ProtocolViolation("truncated Execute message") }
            return .execute(portal: portal, maxRows: rows)
        case UInt8(ascii: "S"): return .sync
        case UInt8(ascii: "H"): return .flush
        case UInt8(ascii: "X"): return .terminate
        default: return .unsupported(type: type)
        }
    }

    static func decodeBind(_ body: inout ByteBuffer) throws(ProtocolViolation) -> FrontendMessage {
        let portal = try readCString(&body, "Bind")
        let statement = try readCString(&body, "Bind")
        let formatCount = try readInt16(&body, "Bind")
        guard formatCount >= 0 else { throw ProtocolViolation("negative format count in Bind") }
        var formats: [Int16] = []
        for _ in 0..<formatCount { formats.append(try readInt16(&body, "Bind")) }
        let valueCount = try readInt16(&body, "Bind")
        guard valueCount >= 0 else { throw ProtocolViolation("negative parameter count in Bind") }
        var values: [ByteBuffer?] = []
        for _ in 0..<valueCount {
            guard let length: Int32 = body.readInteger() else { throw ProtocolViolation("truncated Bind message") }
            if length == -1 {
                values.append(nil)
            } else {
                guard length >= 0, let value = body.readSlice(length: Int(length)) else {
                    throw ProtocolViolation("invalid parameter length \(length) in Bind")
                }
                values.append(value)
            }
        }
        let resultCount = try readInt16(&body, "Bind")
        guard resultCount >= 0 else { throw ProtocolViolation("negative result format count in Bind") }
        var results: [Int16] = []
        for _ in 0..<resultCount { results.append(try readInt16(&body, "Bind")) }
        return .bind(
            portal: portal, statement: statement, parameterFormats: formats, parameters: values,
            resultFormats: results)
    }

    static func readInt16(_ body: inout ByteBuffer, _ what: String) throws(ProtocolViolation) -> Int16 {
        guard let value: Int16 = body.readInteger() else { throw ProtocolViolation("truncated \(what) message") }
        return value
    }

    static func readCString(_ body: inout ByteBuffer, _ what: String) throws(ProtocolViolation) -> String {
        guard let end = body.readableBytesView.firstIndex(of: 0) else {
            throw ProtocolViolation("unterminated string in \(what) message")
        }
        let length = end - body.readerIndex
        let bytes = body.readBytes(length: length)!
        body.moveReaderIndex(forwardBy: 1)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ProtocolViolation("invalid UTF-8 in \(what) message")
        }
        return text
    }
}
