extension SQLValue {
    /// About how many bytes the value holds in memory (budgets, not accounting).
    public var approximateBytes: Int {
        switch self {
        case .text(let text): 16 + text.utf8.count
        case .json(let value): value.approximateBytes
        case .array(let values): values.reduce(16) { $0 + $1.approximateBytes }
        default: 16
        }
    }
}

extension JSONValue {
    /// About how many bytes the value holds in memory (budgets, not accounting).
    public var approximateBytes: Int {
        switch self {
        case .null, .bool: 16
        case .number(let text), .string(let text): 16 + text.utf8.count
        case .array(let values): values.reduce(16) { $0 + $1.approximateBytes }
        case .object(let members): members.reduce(16) { $0 + 16 + $1.0.utf8.count + $1.1.approximateBytes }
        }
    }
}
