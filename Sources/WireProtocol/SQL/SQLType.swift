import Foundation

/// The column and value types the SQL subset knows, with their PostgreSQL OIDs.
public indirect enum SQLType: Sendable, Hashable, CustomStringConvertible {
    case bool, int2, int4, int8, float8, numeric, text, name, char, oid, jsonb, json, timestamptz, pgLSN, regclass
    /// A literal or parameter whose type is not known yet (`'abc'` without a cast).
    case unknown
    case array(SQLType)

    public var oid: Int32 {
        switch self {
        case .bool: 16
        case .int2: 21
        case .int4: 23
        case .int8: 20
        case .float8: 701
        case .numeric: 1700
        case .text: 25
        case .name: 19
        case .char: 18
        case .oid: 26
        case .jsonb: 3802
        case .json: 114
        case .timestamptz: 1184
        case .pgLSN: 3220
        case .regclass: 2205
        case .unknown: 705
        case .array(let element):
            switch element {
            case .bool: 1000
            case .int2: 1005
            case .int4: 1007
            case .int8: 1016
            case .float8: 1022
            case .numeric: 1231
            case .name: 1003
            case .jsonb: 3807
            case .timestamptz: 1185
            default: 1009
            }
        }
    }

    /// `typlen` in RowDescription.
    var length: Int16 {
        switch self {
        case .bool, .char: 1
        case .int2: 2
        case .int4, .oid, .regclass: 4
        case .int8, .float8, .timestamptz, .pgLSN: 8
        case .name: 64
        default: -1
        }
    }

    /// The name `format_type` prints (and IMPORT FOREIGN SCHEMA declares columns with).
    public var description: String {
        switch self {
        case .bool: "boolean"
        case .int2: "smallint"
        case .int4: "integer"
        case .int8: "bigint"
        case .float8: "double precision"
        case .numeric: "numeric"
        case .text: "text"
        case .name: "name"
        case .char: "\"char\""
        case .oid: "oid"
        case .jsonb: "jsonb"
        case .json: "json"
        case .timestamptz: "timestamp with time zone"
        case .pgLSN: "pg_lsn"
        case .regclass: "regclass"
        case .unknown: "unknown"
        case .array(let element): "\(element)[]"
        }
    }

    /// A type by the name a cast spells (`integer`, `int4`, `pg_catalog.text`, `character varying`, …).
    public init?(sqlName: String) {
        var name = sqlName.lowercased()
        if name.hasPrefix("pg_catalog.") { name.removeFirst("pg_catalog.".count) }
        if name.hasSuffix("[]") {
            guard let element = SQLType(sqlName: String(name.dropLast(2))) else { return nil }
            self = .array(element)
            return
        }
        if let parenthesis = name.firstIndex(of: "(") { name = String(name[..<parenthesis]) }
        switch name.trimmingCharacters(in: .whitespaces) {
        case "boolean", "bool": self = .bool
        case "smallint", "int2": self = .int2
        case "integer", "int", "int4": self = .int4
        case "bigint", "int8": self = .int8
        case "double precision", "float8", "real", "float4", "float": self = .float8
        case "numeric", "decimal": self = .numeric
        case "text", "character varying", "varchar", "character", "char", "bpchar", "cstring": self = .text
        case "name": self = .name
        case "\"char\"": self = .char
        case "oid": self = .oid
        case "jsonb": self = .jsonb
        case "json": self = .json
        case "timestamp with time zone", "timestamptz", "timestamp without time zone", "timestamp", "date":
            self = .timestamptz
        case "pg_lsn": self = .pgLSN
        case "regclass": self = .regclass
        default: return nil
        }
    }

    var isNumeric: Bool {
        switch self {
        case .int2, .int4, .int8, .float8, .numeric, .oid: true
        default: false
        }
    }
}
