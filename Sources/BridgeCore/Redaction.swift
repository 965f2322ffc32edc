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
}
