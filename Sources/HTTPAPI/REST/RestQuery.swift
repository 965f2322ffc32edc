import Foundation
import PostgresClient

/// A table as the REST proxy knows it from the catalog: only these columns are accepted.
struct TableInfo: Sendable {
    struct Column: Sendable {
        var name: String
        /// `format_type` of the column (e.g. `timestamp with time zone`).
        var type: String
    }

    var schema: String
    var name: String
    var columns: [Column]
    /// The hypertable's time dimension, when TimescaleDB reports one.
    var timeColumn: String?
    /// The primary key's columns (empty for views and tables without one).
    var primaryKey: [String] = []
    /// Foreign keys from and to it (resource embedding).
    var relationships: [TableRelationship] = []

    /// For a function's result: the subquery that calls it (rows are read from it like a table's)
    /// and its parameters, which come first.
    var source: String?
    var sourceParameters: [String?] = []

    var qualified: String { "\(SQL.identifier(schema)).\(SQL.identifier(name))" }
    /// What a read's FROM names.
    var fromClause: String { source.map { "\($0) AS \(SQL.identifier(name))" } ?? qualified }
    /// How the select list refers to a whole row.
    var rowReference: String { source == nil ? qualified : SQL.identifier(name) }
    var display: String { "\(schema).\(name)" }

    func column(_ name: String) -> Column? { columns.first { $0.name == name } }
}

/// SQL text and its parameters (values are never spliced into the text).
struct SQLStatement: Sendable, Equatable {
    var text: String
    var parameters: [String?]
    /// Kept prepared on the connection by its text (its result columns never change: JSON
    /// text and counts, not a table's own columns).
    var cacheable = false

    init(text: String, parameters: [String?], cacheable: Bool = false) {
        self.text = text
        self.parameters = parameters
        self.cacheable = cacheable
    }
}

/// A PostgREST request's query string on one table: `select=`, filters, logic trees, `order=`,
/// `limit`/`offset`, the write parameters `columns=` and `on_conflict=`, the same on embedded
/// resources (`items.order=…`), and pgbridge's time buckets (`bucket=5m&agg=avg(temp)`).
struct RestQuery: Sendable {
    /// Filters, order and paging of the table or of one embedded resource.
    struct Scope: Sendable, Equatable {
        var conditions: [RestCondition] = []
        var order: [RestOrder] = []
        var limit: Int?
        var offset: Int?
    }

    /// pgbridge's `agg=avg(temp)` (output `avg_temp`), used with `bucket=`.
    struct BucketAggregate: Sendable, Equatable {
        var function: String
        var column: String
        var alias: String { column == "*" ? function : "\(function)_\(column)" }
    }

    var select: [RestSelectItem] = [.star]
    var selectGiven = false
    var root = Scope()
    /// Scopes of embedded resources, by path (`["orders", "items"]`).
    var scopes: [[String]: Scope] = [:]
    var columns: [String]?
    var onConflict: [String]?
    var bucket: String?
    var bucketAggregates: [BucketAggregate] = []
    var timeColumn: String?

    static let bucketFunctions: Set<String> = ["avg", "min", "max", "sum", "count"]

    /// `key=value` pairs of a query string, percent-decoded (`+` is a space).
    static func pairs(_ query: String?) -> [(String, String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { part in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decodeComponent(pieces[0]), pieces.count > 1 ? decodeComponent(pieces[1]) : "")
        }
    }

    /// One percent-encoded component, `+` as a space in query strings (not in paths). A
    /// malformed escape or bytes that are not UTF-8 leave the component as it is (with `+`
    /// still a space), as Foundation's `removingPercentEncoding` would.
    static func decodeComponent(_ text: Substring, plusIsSpace: Bool = true) -> String {
        let utf8 = text.utf8
        guard utf8.contains(where: { ($0 == UInt8(ascii: "+") && plusIsSpace) || $0 == UInt8(ascii: "%") }) else {
            return String(text)
        }
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var spaced: [UInt8] = []
        var decoded: [UInt8]? = []
        spaced.reserveCapacity(utf8.count)
        decoded?.reserveCapacity(utf8.count)
        var index = utf8.startIndex
        while index < utf8.endIndex {
            let byte = utf8[index]
            let plain = byte == UInt8(ascii: "+") && plusIsSpace ? UInt8(ascii: " ") : byte
            spaced.append(plain)
            index = utf8.index(after: index)
            guard byte == UInt8(ascii: "%"), decoded != nil else {
                decoded?.append(plain)
                continue
            }
            guard index < utf8.endIndex, let high = hex(utf8[index]), utf8.index(after: index) < utf8.endIndex,
                let low = hex(utf8[utf8.index(after: index)])
            else {
                decoded = nil
                continue
            }
            decoded?.append(high << 4 | low)
            spaced.append(utf8[index])
            spaced.append(utf8[utf8.index(after: index)])
            index = utf8.index(index, offsetBy: 2)
        }
        if let decoded, let text = String(validating: decoded, as: UTF8.self) { return text }
        return String(decoding: spaced, as: UTF8.self)
    }

    /// Parses the query string and checks every column against `table`. `forWrite`: the time
    /// buckets are refused.
    init(pairs: [(String, String)], table: TableInfo, forWrite: Bool = false) throws {
        for (key, value) in pairs {
            try Self.checkNesting(value, key: key)
            try add(key: key, value: Substring(value), forWrite: forWrite)
        }
        try check(against: table)
    }

    private mutating func add(key: String, value: Substring, forWrite: Bool) throws {
        switch key {
        case "select":
            select = try RestSelectItem.list(value)
            selectGiven = true
        case "columns":
            columns = try Self.names(value, what: "columns")
        case "on_conflict":
            onConflict = try Self.names(value, what: "on_conflict")
        case "bucket", "agg", "time_column":
            guard !forWrite else { throw RestError.parse("\(key)= applies to reads only") }
            try bucketParameter(key, value)
        default:
            let path = try Self.keyPath(key)
            try apply(path: path, value: value, key: key)
        }
    }

    /// Logic trees and embedded resources nest at most this deep (parsing recurses per level).
    static let maxNesting = 32

    static func checkNesting(_ value: String, key: String) throws {
        var depth = 0
        var deepest = 0
        for byte in value.utf8 {
            if byte == UInt8(ascii: "(") {
                depth += 1
                deepest = max(deepest, depth)
            } else if byte == UInt8(ascii: ")") {
                depth -= 1
            }
        }
        guard deepest <= maxNesting else {
            throw RestError.parse(
                "\(key.prefix(40))= nests \(deepest) levels of parentheses: at most \(maxNesting) are accepted")
        }
    }

    /// `items.order` → (["items"], "order"); `not.or` → ([], "not.or"); `price` → ([], "price").
    static func keyPath(_ key: String) throws -> (scope: [String], last: String) {
        var segments: [String] = []
        var current = ""
        var quoted = false
        var arrow = false
        for character in key {
            if character == "\"" { quoted.toggle() }
            if character == "-" || character == ">" { arrow = true }
            if character == ".", !quoted, !arrow {
                segments.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        segments.append(current)
        guard !quoted, segments.allSatisfy({ !$0.isEmpty }) else {
            throw RestError.parse("'\(key.prefix(60))' is not a column, a filter key or a parameter")
        }
        if segments.count >= 2, segments[segments.count - 2] == "not",
            ["or", "and"].contains(segments[segments.count - 1])
        {
            return (Array(segments.dropLast(2)), "not." + segments.last!)
        }
        return (Array(segments.dropLast()), segments.last!)
    }

    private mutating func apply(path: (scope: [String], last: String), value: Substring, key: String) throws {
        var scope = path.scope.isEmpty ? root : (scopes[path.scope] ?? Scope())
        switch path.last {
        case "order":
            scope.order = try RestOrder.list(value)
        case "limit", "offset":
            guard let number = Int(value), number >= 0, number <= 1_000_000_000 else {
                throw RestError.parse("\(key) must be a whole number ≥ 0, got '\(value.prefix(40))'")
            }
            if path.last == "limit" { scope.limit = number } else { scope.offset = number }
        case "or", "and", "not.or", "not.and":
            let isOr = path.last.hasSuffix("or")
            scope.conditions.append(try RestCondition.tree(isOr: isOr, negated: path.last.hasPrefix("not."), value))
        default:
            let field = try RestField.parse(Substring(path.last))
            scope.conditions.append(.filter(try RestFilter.parse(field: field, value)))
        }
        if path.scope.isEmpty { root = scope } else { scopes[path.scope] = scope }
    }

    static func names(_ text: Substring, what: String) throws -> [String] {
        let names = try RestLists.split(text).map { item -> String in
            var scanner = RestScanner(item.trimmingSpaces)
            let name = try scanner.name(stoppingAt: [","], what: "column name")
            return name
        }
        guard !names.isEmpty else { throw RestError.parse("\(what)= names no column") }
        return names
    }

    private mutating func bucketParameter(_ key: String, _ value: Substring) throws {
        switch key {
        case "bucket":
            bucket = try Self.interval(String(value))
        case "agg":
            bucketAggregates = try RestLists.split(value).map { item in
                guard let open = item.firstIndex(of: "("), item.hasSuffix(")") else {
                    throw RestError.parse("agg items look like avg(temp), got '\(item.prefix(40))'")
                }
                let function = String(item[..<open]).lowercased()
                let column = String(item[item.index(after: open)..<item.index(before: item.endIndex)])
                guard Self.bucketFunctions.contains(function) else {
                    throw RestError.parse(
                        "unknown aggregate '\(function.prefix(20))': use \(Self.bucketFunctions.sorted().joined(separator: ", "))"
                    )
                }
                return BucketAggregate(function: function, column: column)
            }
        default:
            timeColumn = String(value)
        }
    }

    /// `5m`, `30s`, `2h`, `1d`, `1w` or a PostgreSQL interval (`15 minutes`), checked by the server.
    static func interval(_ text: String) throws -> String {
        let units: [Character: String] = ["s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"]
        if let unit = text.last, let name = units[unit], let number = Int(text.dropLast()), number > 0 {
            return "\(number) \(name)"
        }
        guard !text.isEmpty, text.count <= 40 else {
            throw RestError.parse("bucket takes an interval such as 5m or 1h")
        }
        return text
    }

    /// Every column named must exist (PostgreSQL's 42703 with the table's name).
    private mutating func check(against table: TableInfo) throws {
        func require(_ column: String, _ place: String) throws {
            guard table.column(column) != nil else {
                throw RestError.unknownColumn(column, in: table.name, hint: "named in \(place)")
            }
        }
        for condition in root.conditions {
            for field in condition.fields { try require(field.column, "a filter") }
        }
        let bucketOutputs = Set(["bucket"] + bucketAggregates.map(\.alias))
        for order in root.order where !(bucket != nil && bucketOutputs.contains(order.field.column)) {
            try require(order.field.column, "order")
        }
        for item in select {
            switch item {
            case .field(let field, _, _): try require(field.column, "select")
            case .aggregate(_, let field, _, _): if let field { try require(field.column, "select") }
            case .star, .embed: break
            }
        }
        for column in (columns ?? []) + (onConflict ?? []) { try require(column, "columns/on_conflict") }
        if bucket == nil, !bucketAggregates.isEmpty {
            throw RestError.parse("agg= needs bucket= (e.g. bucket=5m&agg=avg(temp))")
        }
        if bucket != nil {
            if bucketAggregates.isEmpty { throw RestError.parse("bucket= needs agg= (e.g. agg=avg(temp),max(temp))") }
            for aggregate in bucketAggregates where !(aggregate.function == "count" && aggregate.column == "*") {
                try require(aggregate.column, "agg")
            }
            guard let time = timeColumn ?? table.timeColumn else {
                throw RestError.parse(
                    "bucket= needs a time column: \(table.display) is not a hypertable, so add time_column=<column>")
            }
            guard let column = table.column(time) else { throw RestError.unknownColumn(time, in: table.name) }
            guard column.type.hasPrefix("timestamp") else {
                throw RestError.parse("time_column '\(time)' is \(column.type), not a timestamp")
            }
            timeColumn = time
        }
    }

    // MARK: SQL

    /// `WHERE …` of a scope (empty without conditions).
    static func whereClause(
        _ scope: Scope, _ parameters: inout [String?], qualifier: String?, table: TableInfo
    ) -> String {
        guard !scope.conditions.isEmpty else { return "" }
        var parts: [String] = []
        for condition in scope.conditions {
            parts.append(condition.sql(&parameters, qualifier: qualifier) { table.column($0)?.type })
        }
        return " WHERE " + parts.joined(separator: " AND ")
    }
}
