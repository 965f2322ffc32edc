import Foundation

/// The `Prefer` header as PostgREST reads it (RFC 7240): `return=`, `count=`, `resolution=`,
/// `missing=`, `handling=`, `tx=`, `max-affected=`, `params=`. Unknown preferences are ignored
/// unless `handling=strict`.
struct RestPreferences: Sendable, Equatable {
    enum Return: String, Sendable { case minimal, headersOnly = "headers-only", representation }
    enum Count: String, Sendable { case exact, planned, estimated }
    enum Resolution: String, Sendable {
        case mergeDuplicates = "merge-duplicates", ignoreDuplicates = "ignore-duplicates"
    }
    enum Transaction: String, Sendable { case commit, rollback }

    var returning: Return?
    var count: Count?
    var resolution: Resolution?
    /// `missing=default`: keys absent from a body object take the column's default, not NULL.
    var missingDefault = false
    var strict = false
    var transaction: Transaction?
    var maxAffected: Int?
    var singleObjectParameters = false
    /// Preferences that were not understood (refused with `handling=strict`).
    var unknown: [String] = []

    init(_ headers: [String]) {
        for header in headers {
            for raw in header.split(separator: ",") {
                let item = raw.trimmingCharacters(in: .whitespaces)
                guard !item.isEmpty else { continue }
                let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                let value = parts.count > 1 ? parts[1] : ""
                switch parts[0] {
                case "return":
                    if let parsed = Return(rawValue: value) { returning = parsed } else { unknown.append(item) }
                case "count":
                    if let parsed = Count(rawValue: value) { count = parsed } else { unknown.append(item) }
                case "resolution":
                    if let parsed = Resolution(rawValue: value) { resolution = parsed } else { unknown.append(item) }
                case "missing":
                    if value == "default" || value == "null" {
                        missingDefault = value == "default"
                    } else {
                        unknown.append(item)
                    }
                case "handling":
                    if value == "strict" || value == "lenient" {
                        strict = value == "strict"
                    } else {
                        unknown.append(item)
                    }
                case "tx":
                    if let parsed = Transaction(rawValue: value) { transaction = parsed } else { unknown.append(item) }
                case "max-affected":
                    if let number = Int(value), number >= 0 { maxAffected = number } else { unknown.append(item) }
                case "params":
                    if value == "single-object" { singleObjectParameters = true } else { unknown.append(item) }
                case "timezone":
                    break  // not applied; listed as not applied by its absence from Preference-Applied
                default:
                    unknown.append(item)
                }
            }
        }
    }

    /// Itself, or PGRST122 when `handling=strict` meets a preference it does not know.
    func checkedStrictness() throws -> RestPreferences {
        guard strict, let unknown = unknown.first else { return self }
        throw RestError(
            status: .badRequest, code: "PGRST122", message: "Invalid preferences given with handling=strict",
            details: "Invalid preferences: \(unknown.prefix(100))")
    }
}
