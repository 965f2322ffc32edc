import BridgeCore
import CLibPQ
import Foundation

/// A libpq connection string (`key=value …` or a `postgresql://` URI) read by libpq itself
/// (`PQconninfoParse`), so that what pgbridge redacts or merges is exactly what libpq would use:
/// `password = secret` with spaces, quoting and URI parameters included.
public struct ConnectionString: Sendable {
    public struct Option: Sendable {
        let keyword: String
        let value: String
        /// libpq's `dispchar`: "*" for secrets (password), "D" for debug options.
        let display: String
    }

    public let options: [Option]

    /// nil when libpq cannot parse the text.
    public init?(_ text: String) {
        var error: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(text, &error) else {
            if let error { PQfreemem(error) }
            return nil
        }
        defer { PQconninfoFree(parsed) }
        var options: [Option] = []
        var index = 0
        while let keyword = parsed[index].keyword {
            if let value = parsed[index].val {
                options.append(
                    Option(
                        keyword: String(cString: keyword), value: String(cString: value),
                        display: parsed[index].dispchar.map { String(cString: $0) } ?? ""))
            }
            index += 1
        }
        self.options = options
    }

    public func value(_ keyword: String) -> String? {
        options.first { $0.keyword == keyword }?.value
    }

    public var hasPassword: Bool { options.contains { $0.display == "*" && !$0.value.isEmpty } }

    /// The same settings as `key=value` text (where, who and which database first), secrets as `***`.
    public var redacted: String {
        let first = ["host", "hostaddr", "port", "user", "password", "dbname"]
        let ordered =
            first.compactMap { keyword in options.first { $0.keyword == keyword } }
            + options.filter { !first.contains($0.keyword) }
        return ordered.filter { $0.display != "D" }.map { option in
            "\(option.keyword)=\(option.display == "*" ? "***" : Self.quoted(option.value))"
        }.joined(separator: " ")
    }

    /// The same settings as a `postgresql://` URI, the password as `***`.
    public var redactedURI: String {
        var uri = "postgresql://"
        let user = value("user")
        if let user { uri += Self.percentEncoded(user) + (hasPassword ? ":***" : "") + "@" }
        var query: [String] = []
        let host = value("host") ?? value("hostaddr")
        let port = value("port")
        if let host, !host.contains(","), !host.contains("/") {
            uri += host.contains(":") ? "[\(host)]" : host
            if let port, !port.contains(",") { uri += ":\(port)" } else if let port { query.append("port=\(port)") }
        } else {
            if let host { query.append("host=\(Self.percentEncoded(host))") }
            if let port { query.append("port=\(Self.percentEncoded(port))") }
        }
        uri += "/" + (value("dbname").map(Self.percentEncoded) ?? "")
        let shown: Set<String> = ["user", "host", "hostaddr", "port", "dbname"]
        for option in options where !shown.contains(option.keyword) && option.display != "D" {
            if option.keyword == "password" && user != nil { continue }  // shown as user:***
            query.append("\(option.keyword)=\(option.display == "*" ? "***" : Self.percentEncoded(option.value))")
        }
        return query.isEmpty ? uri : uri + "?" + query.joined(separator: "&")
    }

    /// A connection string or URI for logs and errors, in the form it was written: parsed by
    /// libpq when it can be, else by pattern (free text that may contain one).
    public static func redact(_ text: String) -> String {
        guard let parsed = ConnectionString(text) else { return Redaction.redactConnectionString(text) }
        let isURI = text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
        return isURI ? parsed.redactedURI : parsed.redacted
    }

    public static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let unreserved =
                (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E
            out += unreserved ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }
        return out
    }

    public static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && !value.contains { $0 == " " || $0 == "'" || $0 == "\\" || $0 == "\t" }
        if plain { return value }
        return "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
