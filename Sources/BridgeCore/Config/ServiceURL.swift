/// A `scheme://[user[:password]@]host[:port][/path]` URL split into parts, percent-decoded.
/// Used for Redis and AMQP URLs; `description` never shows the password.
public struct ServiceURL: Sendable, Equatable, CustomStringConvertible {
    public var scheme: String
    public var user: String?
    public var password: String?
    public var host: String
    public var port: Int?
    /// The path without its leading `/`, percent-decoded (a Redis db number, an AMQP vhost).
    public var path: String?

    public init?(_ text: String) {
        guard let schemeEnd = text.range(of: "://") else { return nil }
        scheme = String(text[..<schemeEnd.lowerBound]).lowercased()
        var rest = Substring(text[schemeEnd.upperBound...])
        // Credentials first: a password may contain '/' (it should be percent-encoded, but a raw
        // one must not end up in the host or path, which are logged).
        var credentials: Substring?
        if let at = rest.lastIndex(of: "@") {
            credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        if let slash = rest.firstIndex(of: "/") {
            let rawPath = rest[rest.index(after: slash)...]
            path = rawPath.isEmpty ? nil : Self.percentDecode(rawPath)
            rest = rest[..<slash]
        }
        if let credentials {
            if let colon = credentials.firstIndex(of: ":") {
                let name = Self.percentDecode(credentials[..<colon])
                user = name.isEmpty ? nil : name
                password = Self.percentDecode(credentials[credentials.index(after: colon)...])
            } else {
                user = Self.percentDecode(credentials)
            }
        }
        if rest.hasPrefix("[") {  // [::1]:6379
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()) else { return nil }
                port = value
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let value = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = value
        } else {
            host = String(rest)
        }
        if host.isEmpty { host = "127.0.0.1" }
        if let port, !(1...65535).contains(port) { return nil }
    }

    public var description: String {
        var text = "\(scheme)://"
        if let user { text += user + (password == nil ? "@" : ":***@") } else if password != nil { text += ":***@" }
        text += host.contains(":") ? "[\(host)]" : host
        if let port { text += ":\(port)" }
        if let path { text += "/" + path.replacingOccurrences(of: "/", with: "%2F") }
        return text
    }

    static func percentDecode(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension ServiceURL {
    /// The URL of a client's configuration, or the error a client reports for a malformed one.
    public static func required(_ text: String, for sink: String) throws -> ServiceURL {
        guard let url = ServiceURL(text) else {
            throw SinkError(sink: sink, message: "malformed URL", retriable: false)
        }
        return url
    }
}
