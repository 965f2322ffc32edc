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
        // key/value and query-string forms: password=secret
        for marker in ["password=", "sslpassword="] {
            var searchStart = result.startIndex
            while let range = result.range(of: marker, options: [], range: searchStart..<result.endIndex) {
                var end = range.upperBound
                if end < result.endIndex, result[end] == "'" {
                    end = result.index(after: end)
                    while end < result.endIndex, result[end] != "'" { end = result.index(after: end) }
                    if end < result.endIndex { end = result.index(after: end) }
                } else {
                    while end < result.endIndex, result[end] != " ", result[end] != "&" {
                        end = result.index(after: end)
                    }
                }
                result.replaceSubrange(range.upperBound..<end, with: "***")
                searchStart = result.index(range.upperBound, offsetBy: 3)
            }
        }
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
