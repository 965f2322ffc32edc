/// Keeps secrets out of logs, errors and API output.
public enum Redaction {
    /// Replaces the password in `postgresql://user:secret@host/db` URIs and `password=secret`
    /// key/value pairs with `***`.
    public static func redactConnectionString(_ s: String) -> String {
        var result = s
        // URI userinfo: scheme://user:password@host
        if let schemeEnd = result.range(of: "://") {
            let rest = result[schemeEnd.upperBound...]
            if let at = rest.firstIndex(of: "@") {
                let userinfo = rest[rest.startIndex..<at]
                if let colon = userinfo.firstIndex(of: ":") {
                    result.replaceSubrange(result.index(after: colon)..<at, with: "***")
                }
            }
        }
        // key/value and query-string forms: password=secret, password = 'a b', sslpassword=…
        let pair = #/(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&]*)/#
        result = result.replacing(pair) { match in "\(match.1)***" }
        return result
    }

    /// `scheme://host:port/…`: webhook URLs often carry their secret in the path or query, and
    /// credentials in the user part; none of that reaches logs or API answers.
    public static func redactHTTPURL(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return "(url)" }
        var authority = url[scheme.upperBound...]
        let hasPath = authority.contains(where: { $0 == "/" || $0 == "?" })
        if let end = authority.firstIndex(where: { $0 == "/" || $0 == "?" }) { authority = authority[..<end] }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        return url[..<scheme.upperBound] + authority + (hasPath ? "/…" : "")
    }
}
