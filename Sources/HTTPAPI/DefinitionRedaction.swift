import BridgeCore
import Foundation

/// Removes secrets from a pipe definition before it is shown: passwords and client secrets,
/// every HTTP header value, passwords inside URLs, and librdkafka properties that name a
/// password, a secret or a key. `${ENV}` references are kept (they are not secrets).
enum DefinitionRedaction {
    static func redact(_ definition: String) -> Any? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(definition.utf8), options: [.fragmentsAllowed])
        else { return nil }
        return redact(object, key: nil)
    }

    static func redact(_ value: Any, key: String?) -> Any {
        if let key, isSecret(key) { return isReference(value) ? value : "***" }
        switch value {
        case let dictionary as [String: Any]:
            if key == "headers" {
                return dictionary.mapValues { isReference($0) ? $0 : "***" }
            }
            return Dictionary(uniqueKeysWithValues: dictionary.map { ($0.key, redact($0.value, key: $0.key)) })
        case let array as [Any]:
            return array.map { redact($0, key: nil) }
        case let string as String:
            if string.hasPrefix("http://") || string.hasPrefix("https://") { return Redaction.redactHTTPURL(string) }
            return string.contains("://") || string.contains("password=")
                ? Redaction.redactConnectionString(string) : string
        default:
            return value
        }
    }

    static func isSecret(_ key: String) -> Bool {
        let lower = key.lowercased()
        if lower == "token_url" { return false }
        return ["password", "secret", "token", "credential", "oauthbearer", "jaas", ".pem", "authorization"].contains {
            lower.contains($0)
        } || lower.hasSuffix(".key")
    }

    /// A value that is only `${NAME}`: it names the secret without holding it.
    static func isReference(_ value: Any) -> Bool {
        guard let string = value as? String else { return false }
        return string.hasPrefix("${") && string.hasSuffix("}") && !string.dropFirst(2).contains("$")
    }
}
