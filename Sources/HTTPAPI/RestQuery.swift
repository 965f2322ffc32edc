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

    var qualified: String { "\(SQL.identifier(schema)).\(SQL.identifier(name))" }

    func column(_ name: String) -> Column? { columns.first { $0.name == name } }
}

/// SQL text and its parameters (values are never spliced into the text).
struct SQLStatement: Sendable, Equatable {
    var text: String
    var parameters: [String?]
}

/// A mistake in the request (HTTP 400), naming the parameter and the fix.
struct RestQueryError: Error, Equatable, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A PostgREST-style request on one table: `select=`, filters `col=op.value`, `order=`,
/// `limit`/`offset`, and time buckets `bucket=5m&agg=avg(temp)`.
struct RestQuery: Sendable {
    enum Operator: String, Sendable, CaseIterable {
        case eq, neq, gt, gte, lt, lte, like, ilike, `in`, `is`
    }

    struct Filter: Sendable, Equatable {
        var column: String
        var negated: Bool
        var op: Operator
        var value: String
    }

    struct Order: Sendable, Equatable {
        var column: String
        var descending: Bool
        var nulls: String?
    }

    struct Aggregate: Sendable, Equatable {
        var function: String
        var column: String
        /// The output column: `avg_temp`, or `count` for `count(*)`.
        var alias: String { column == "*" ? function : "\(function)_\(column)" }
    }

    static let reserved: Set<String> = ["select", "order", "limit", "offset", "bucket", "agg", "time_column"]
    static let aggregateFunctions: Set<String> = ["avg", "min", "max", "sum", "count"]

    var select: [String] = []
    var filters: [Filter] = []
    var order: [Order] = []
    var limit: Int?
    var offset: Int?
    var bucket: String?
    var aggregates: [Aggregate] = []
    var timeColumn: String?

    /// `key=value` pairs of a query string, percent-decoded (`+` is a space).
    static func pairs(_ query: String?) -> [(String, String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { part in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(pieces[0]), pieces.count > 1 ? decode(pieces[1]) : "")
        }
    }

    /// Parses the query against the table's columns; `allowShaping` false (writes) accepts
    /// filters only.
    init(pairs: [(String, String)], table: TableInfo, allowShaping: Bool = true) throws {
        for (key, value) in pairs {
            if Self.reserved.contains(key) {
                guard allowShaping else {
                    throw RestQueryError("\(key)= applies to reads only: writes take filters (column=op.value)")
                }
                try shape(key, value, table: table)
                continue
            }
            guard table.column(key) != nil else {
                throw RestQueryError(
                    "unknown column '\(key)' in table \(table.schema).\(table.name) (filters are column=op.value)")
            }
            filters.append(try Self.filter(column: key, value))
        }
        if bucket == nil, !aggregates.isEmpty {
            throw RestQueryError("agg= needs bucket= (e.g. bucket=5m&agg=avg(temp))")
        }
        if bucket != nil {
            if aggregates.isEmpty { throw RestQueryError("bucket= needs agg= (e.g. agg=avg(temp),max(temp))") }
            let time = timeColumn ?? table.timeColumn
            guard let time else {
                throw RestQueryError(
                    "bucket= needs a time column: \(table.schema).\(table.name) is not a hypertable, so add time_column=<column>"
                )
            }
            guard let column = table.column(time) else { throw RestQueryError("unknown time_column '\(time)'") }
            guard column.type.hasPrefix("timestamp") else {
                throw RestQueryError("time_column '\(time)' is \(column.type), not a timestamp")
            }
            timeColumn = time
        }
    }

    private mutating func shape(_ key: String, _ value: String, table: TableInfo) throws {
        switch key {
        case "select":
            select = try value.split(separator: ",").map { name in
                let name = name.trimmingCharacters(in: .whitespaces)
                if name == "*" { return name }
                guard table.column(name) != nil else {
                    throw RestQueryError("unknown column '\(name)' in select (table \(table.schema).\(table.name))")
                }
                return name
            }
        case "order":
            order = try value.split(separator: ",").map { try Self.order(String($0)) }
        case "limit", "offset":
            guard let number = Int(value), number >= 0, number <= 1_000_000_000 else {
                throw RestQueryError("\(key) must be a whole number ≥ 0, got '\(value.prefix(40))'")
            }
            if key == "limit" { limit = number } else { offset = number }
        case "bucket":
            bucket = try Self.interval(value)
        case "agg":
            aggregates = try Self.splitTopLevel(value).map { item in
                guard let open = item.firstIndex(of: "("), item.hasSuffix(")") else {
                    throw RestQueryError("agg items look like avg(temp), got '\(item.prefix(40))'")
                }
                let function = String(item[..<open]).lowercased()
                let column = String(item[item.index(after: open)..<item.index(before: item.endIndex)])
                guard Self.aggregateFunctions.contains(function) else {
                    throw RestQueryError(
                        "unknown aggregate '\(function.prefix(20))': use \(Self.aggregateFunctions.sorted().joined(separator: ", "))"
                    )
                }
                guard table.column(column) != nil || (function == "count" && column == "*") else {
                    throw RestQueryError("unknown column '\(column.prefix(60))' in agg")
                }
                return Aggregate(function: function, column: column)
            }
        case "time_column":
            timeColumn = value
        default:
            break
        }
    }

    static func filter(column: String, _ text: String) throws -> Filter {
        var rest = Substring(text)
        var negated = false
        if rest.hasPrefix("not.") {
            negated = true
            rest = rest.dropFirst(4)
        }
        guard let dot = rest.firstIndex(of: "."), let op = Operator(rawValue: String(rest[..<dot])) else {
            throw RestQueryError(
                "filter \(column)=\(text.prefix(40)) needs an operator: \(column)=eq.value (operators: \(Operator.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        let value = String(rest[rest.index(after: dot)...])
        if op == .is, !["null", "true", "false", "unknown"].contains(value.lowercased()) {
            throw RestQueryError("is. takes null, true, false or unknown, got '\(value.prefix(40))'")
        }
        if op == .in, !(value.hasPrefix("(") && value.hasSuffix(")")) {
            throw RestQueryError("in. takes a list in parentheses: \(column)=in.(1,2,3)")
        }
        return Filter(column: column, negated: negated, op: op, value: value)
    }

    static func order(_ text: String) throws -> Order {
        let parts = text.split(separator: ".").map(String.init)
        guard let column = parts.first, !column.isEmpty else { throw RestQueryError("empty order item") }
        var order = Order(column: column, descending: false, nulls: nil)
        for modifier in parts.dropFirst() {
            switch modifier {
            case "asc": order.descending = false
            case "desc": order.descending = true
            case "nullsfirst": order.nulls = "NULLS FIRST"
            case "nullslast": order.nulls = "NULLS LAST"
            default:
                throw RestQueryError("order takes column[.asc|.desc][.nullsfirst|.nullslast], got '\(text.prefix(60))'")
            }
        }
        return order
    }

    /// `5m`, `30s`, `2h`, `1d`, `1w` or a PostgreSQL interval (`15 minutes`), checked by the server.
    static func interval(_ text: String) throws -> String {
        let units: [Character: String] = ["s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"]
        if let unit = text.last, let name = units[unit], let number = Int(text.dropLast()), number > 0 {
            return "\(number) \(name)"
        }
        guard !text.isEmpty, text.count <= 40 else { throw RestQueryError("bucket takes an interval such as 5m or 1h") }
        return text
    }

    /// Splits on commas outside parentheses and double quotes.
    static func splitTopLevel(_ text: String) -> [String] {
        var items: [String] = []
        var current = ""
        var depth = 0
        var quoted = false
        for character in text {
            switch character {
            case "\"": quoted.toggle()
            case "(" where !quoted: depth += 1
            case ")" where !quoted: depth -= 1
            case "," where !quoted && depth == 0:
                items.append(current)
                current = ""
                continue
            default: break
            }
            current.append(character)
        }
        if !current.isEmpty { items.append(current) }
        return items
    }

    /// The values of `in.(a,"b,c",d)`.
    static func listValues(_ value: String) -> [String] {
        let inner = String(value.dropFirst().dropLast())
        guard !inner.isEmpty else { return [] }
        return splitTopLevel(inner).map { item in
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            if trimmed.count >= 2, trimmed.hasPrefix("\""), trimmed.hasSuffix("\"") {
                return String(trimmed.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            return trimmed
        }
    }

    // MARK: SQL

    /// `WHERE …` (empty without filters), appending bound values to `parameters`.
    func whereClause(_ parameters: inout [String?]) -> String {
        guard !filters.isEmpty else { return "" }
        func bind(_ value: String) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        let conditions = filters.map { filter -> String in
            let column = SQL.identifier(filter.column)
            let condition: String
            switch filter.op {
            case .eq: condition = "\(column) = \(bind(filter.value))"
            case .neq: condition = "\(column) <> \(bind(filter.value))"
            case .gt: condition = "\(column) > \(bind(filter.value))"
            case .gte: condition = "\(column) >= \(bind(filter.value))"
            case .lt: condition = "\(column) < \(bind(filter.value))"
            case .lte: condition = "\(column) <= \(bind(filter.value))"
            case .like:
                condition = "\(column)::text LIKE \(bind(filter.value.replacingOccurrences(of: "*", with: "%")))"
            case .ilike:
                condition = "\(column)::text ILIKE \(bind(filter.value.replacingOccurrences(of: "*", with: "%")))"
            case .in:
                let values = Self.listValues(filter.value)
                condition = values.isEmpty ? "false" : "\(column) IN (\(values.map(bind).joined(separator: ", ")))"
            case .is:
                condition = "\(column) IS \(filter.value.uppercased())"
            }
            return filter.negated ? "NOT (\(condition))" : condition
        }
        return " WHERE " + conditions.joined(separator: " AND ")
    }

    /// The SELECT for a read. `timeBucket`: `time_bucket` (TimescaleDB) instead of `date_bin`.
    func selectStatement(_ table: TableInfo, timeBucket: Bool) throws -> SQLStatement {
        var parameters: [String?] = []
        var sql = "SELECT "
        var grouped: [String] = []
        if let bucket, let timeColumn {
            parameters.append(bucket)
            let time = SQL.identifier(timeColumn)
            let type = table.column(timeColumn)?.type ?? ""
            let origin =
                type.contains("with time zone") ? "TIMESTAMPTZ '2000-01-03 00:00:00+00'" : "TIMESTAMP '2000-01-03'"
            let expression =
                timeBucket ? "time_bucket($1::interval, \(time))" : "date_bin($1::interval, \(time), \(origin))"
            grouped = select.filter { $0 != "*" }
            var items = ["\(expression) AS bucket"] + grouped.map(SQL.identifier)
            items += aggregates.map { aggregate in
                let argument = aggregate.column == "*" ? "*" : SQL.identifier(aggregate.column)
                return "\(aggregate.function)(\(argument)) AS \(SQL.identifier(aggregate.alias))"
            }
            sql += items.joined(separator: ", ")
        } else if select.isEmpty || select.contains("*") {
            sql += "*"
        } else {
            sql += select.map(SQL.identifier).joined(separator: ", ")
        }
        sql += " FROM \(table.qualified)"
        sql += whereClause(&parameters)
        if bucket != nil {
            sql += " GROUP BY " + (1...(grouped.count + 1)).map(String.init).joined(separator: ", ")
        }
        var orderItems = order
        if orderItems.isEmpty, bucket != nil { orderItems = [Order(column: "bucket", descending: false)] }
        if !orderItems.isEmpty {
            let known = Set(table.columns.map(\.name)).union(bucket == nil ? [] : ["bucket"] + aggregates.map(\.alias))
            sql +=
                " ORDER BY "
                + (try orderItems.map { item in
                    guard known.contains(item.column) else {
                        throw RestQueryError("unknown column '\(item.column.prefix(60))' in order")
                    }
                    return SQL.identifier(item.column) + (item.descending ? " DESC" : " ASC")
                        + (item.nulls.map { " \($0)" } ?? "")
                }).joined(separator: ", ")
        }
        if let limit { sql += " LIMIT \(limit)" }
        if let offset { sql += " OFFSET \(offset)" }
        return SQLStatement(text: sql, parameters: parameters)
    }

    /// INSERT of a JSON object or array (`body` is bound as one parameter).
    static func insertStatement(_ table: TableInfo, body: String, columns: [String], returning: Bool) -> SQLStatement {
        let list = columns.map(SQL.identifier).joined(separator: ", ")
        let insert =
            "INSERT INTO \(table.qualified) (\(list)) SELECT \(list) FROM json_populate_recordset(NULL::\(table.qualified), $1::json)"
        return SQLStatement(text: wrapWrite(insert, returning: returning), parameters: [body])
    }

    func updateStatement(_ table: TableInfo, body: String, columns: [String], returning: Bool) -> SQLStatement {
        var parameters: [String?] = [body]
        // Scalar subqueries rather than UPDATE … FROM: the body's record has every column of the
        // table, which would make the filters' column names ambiguous.
        let assignments = columns.map {
            "\(SQL.identifier($0)) = (SELECT \(SQL.identifier($0)) FROM json_populate_record(NULL::\(table.qualified), $1::json))"
        }
        let update = "UPDATE \(table.qualified) SET \(assignments.joined(separator: ", "))" + whereClause(&parameters)
        return SQLStatement(text: Self.wrapWrite(update, returning: returning, table: table), parameters: parameters)
    }

    func deleteStatement(_ table: TableInfo, returning: Bool) -> SQLStatement {
        var parameters: [String?] = []
        let delete = "DELETE FROM \(table.qualified)" + whereClause(&parameters)
        return SQLStatement(text: Self.wrapWrite(delete, returning: returning, table: table), parameters: parameters)
    }

    /// One row: the affected rows as a JSON array (or NULL) and their count.
    static func wrapWrite(_ statement: String, returning: Bool, table: TableInfo? = nil) -> String {
        let target = table.map { "\($0.qualified).*" } ?? "*"
        if returning {
            return
                "WITH pgbridge_rows AS (\(statement) RETURNING \(target)) SELECT coalesce(json_agg(pgbridge_rows), '[]')::text, count(*) FROM pgbridge_rows"
        }
        return "WITH pgbridge_rows AS (\(statement) RETURNING 1) SELECT NULL, count(*) FROM pgbridge_rows"
    }
}
