import BridgeCore

/// The `filter` processor's expression language, evaluated on each event:
///
///     temp > 30 and device != 'test'
///     op in ('insert', 'update') and not (after.status is null)
///     source.table = 'orders' and after.email like '%@example.com'
///
/// Fields are `FieldPath`s (`op`, `source.table` or `table`, `key.id`, `before.x`, `after.x`,
/// or a bare column name for the row's value). Literals: numbers, 'strings' ('' escapes a
/// quote), true, false, null. Operators: = == != <> < <= > >=, and, or, not, in (…), is [not]
/// null, [not] like / ilike (% and _). A comparison with null, or between a string and a
/// number that the string does not spell, is false (as in SQL, but never unknown).
public struct FilterExpression: Sendable, CustomStringConvertible {
    indirect enum Node: Sendable {
        case and(Node, Node)
        case or(Node, Node)
        case not(Node)
        case compare(Operand, Comparison, Operand)
        case isNull(Operand, negated: Bool)
        case inList(Operand, [Literal], negated: Bool)
        case like(Operand, pattern: [UInt8], caseInsensitive: Bool, negated: Bool)
        case truthy(Operand)
    }

    enum Operand: Sendable {
        case field(FieldPath)
        case literal(Literal)
    }

    enum Literal: Sendable, Equatable {
        case null
        case bool(Bool)
        case number(Double)
        case string([UInt8])
    }

    enum Comparison: Sendable {
        case equal, notEqual, less, lessOrEqual, greater, greaterOrEqual
    }

    let root: Node
    public let description: String

    public init(_ text: String) throws(FilterError) {
        var parser = FilterParser(text)
        root = try parser.parseExpression()
        try parser.expectEnd()
        description = text
    }

    /// Whether the event passes the filter.
    public func matches(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        Self.evaluate(root, fields, bytes)
    }

    static func evaluate(_ node: Node, _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        switch node {
        case .and(let left, let right):
            return evaluate(left, fields, bytes) && evaluate(right, fields, bytes)
        case .or(let left, let right):
            return evaluate(left, fields, bytes) || evaluate(right, fields, bytes)
        case .not(let inner):
            return !evaluate(inner, fields, bytes)
        case .compare(let left, let comparison, let right):
            return compare(value(left, fields, bytes), comparison, value(right, fields, bytes))
        case .isNull(let operand, let negated):
            return (value(operand, fields, bytes) == .null) != negated
        case .inList(let operand, let list, let negated):
            let value = value(operand, fields, bytes)
            guard value != .null else { return false }
            return list.contains { compare(value, .equal, $0) } != negated
        case .like(let operand, let pattern, let caseInsensitive, let negated):
            guard case .string(let text) = value(operand, fields, bytes) else { return false }
            return LikePattern.matches(text[...], pattern[...], caseInsensitive: caseInsensitive) != negated
        case .truthy(let operand):
            return value(operand, fields, bytes) == .bool(true)
        }
    }

    static func value(_ operand: Operand, _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>) -> Literal {
        switch operand {
        case .literal(let literal):
            return literal
        case .field(let path):
            guard let range = path.value(in: fields, bytes), !range.isEmpty else { return .null }
            let scanner = JSONScanner(bytes)
            switch bytes[range.lowerBound] {
            case UInt8(ascii: "n"): return .null
            case UInt8(ascii: "t"): return .bool(true)
            case UInt8(ascii: "f"): return .bool(false)
            case UInt8(ascii: "\""):
                var text: [UInt8] = []
                scanner.appendText(range, into: &text)
                return .string(text)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                return .string(Array(bytes[range]))
            default:
                return Double(String(decoding: bytes[range], as: UTF8.self)).map { .number($0) } ?? .null
            }
        }
    }

    static func compare(_ left: Literal, _ comparison: Comparison, _ right: Literal) -> Bool {
        let order: Int
        switch (left, right) {
        case (.null, _), (_, .null):
            return false
        case (.number(let a), .number(let b)):
            order = a < b ? -1 : (a > b ? 1 : 0)
        case (.string(let s), .number(let b)):
            // numeric columns arrive as strings ("12.50"): compare as numbers when they spell one
            guard let a = Double(String(decoding: s, as: UTF8.self)) else { return comparison == .notEqual }
            order = a < b ? -1 : (a > b ? 1 : 0)
        case (.number(let a), .string(let s)):
            guard let b = Double(String(decoding: s, as: UTF8.self)) else { return comparison == .notEqual }
            order = a < b ? -1 : (a > b ? 1 : 0)
        case (.string(let a), .string(let b)):
            order = a.lexicographicallyPrecedes(b) ? -1 : (a == b ? 0 : 1)
        case (.bool(let a), .bool(let b)):
            guard comparison == .equal || comparison == .notEqual else { return false }
            order = a == b ? 0 : 1
        default:
            return comparison == .notEqual
        }
        switch comparison {
        case .equal: return order == 0
        case .notEqual: return order != 0
        case .less: return order < 0
        case .lessOrEqual: return order <= 0
        case .greater: return order > 0
        case .greaterOrEqual: return order >= 0
        }
    }
}

/// A filter that does not parse: `position` is the 1-based character column of the mistake.
public struct FilterError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var position: Int

    public var description: String { "\(message) at position \(position)" }
}

enum LikePattern {
    /// SQL LIKE: `%` any run, `_` one character (byte-wise; `\` escapes).
    static func matches(_ text: ArraySlice<UInt8>, _ pattern: ArraySlice<UInt8>, caseInsensitive: Bool) -> Bool {
        var steps = 0
        return matches(text, pattern, caseInsensitive: caseInsensitive, steps: &steps)
    }

    /// Greedy matching that backtracks only to the last `%`: O(text × pattern) whatever the
    /// pattern. `steps` counts the loop's iterations (tests check the bound).
    static func matches(
        _ text: ArraySlice<UInt8>, _ pattern: ArraySlice<UInt8>, caseInsensitive: Bool, steps: inout Int
    ) -> Bool {
        func fold(_ b: UInt8) -> UInt8 { caseInsensitive && b >= 65 && b <= 90 ? b + 32 : b }
        var t = text.startIndex
        var p = pattern.startIndex
        var starP: Int?
        var starT = 0
        while t < text.endIndex {
            steps += 1
            if p < pattern.endIndex {
                var c = pattern[p]
                if c == UInt8(ascii: "%") {
                    starP = p
                    starT = t
                    p += 1
                    continue
                }
                var literal = false
                if c == UInt8(ascii: "\\"), p + 1 < pattern.endIndex {
                    c = pattern[p + 1]
                    literal = true
                }
                if (!literal && c == UInt8(ascii: "_")) || fold(c) == fold(text[t]) {
                    p += literal ? 2 : 1
                    t += 1
                    continue
                }
            }
            guard let star = starP else { return false }
            p = star + 1
            starT += 1
            t = starT
        }
        while p < pattern.endIndex, pattern[p] == UInt8(ascii: "%") { p += 1 }
        return p == pattern.endIndex
    }
}
