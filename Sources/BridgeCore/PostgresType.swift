/// Built-in PostgreSQL type OIDs that the value mapping treats specially.
public enum PostgresType {
    public static let bool: UInt32 = 16
    public static let bytea: UInt32 = 17
    public static let char: UInt32 = 18
    public static let name: UInt32 = 19
    public static let int8: UInt32 = 20
    public static let int2: UInt32 = 21
    public static let int4: UInt32 = 23
    public static let text: UInt32 = 25
    public static let oidType: UInt32 = 26
    public static let xid: UInt32 = 28
    public static let json: UInt32 = 114
    public static let float4: UInt32 = 700
    public static let float8: UInt32 = 701
    public static let bpchar: UInt32 = 1042
    public static let varchar: UInt32 = 1043
    public static let date: UInt32 = 1082
    public static let time: UInt32 = 1083
    public static let timestamp: UInt32 = 1114
    public static let timestamptz: UInt32 = 1184
    public static let interval: UInt32 = 1186
    public static let numeric: UInt32 = 1700
    public static let uuid: UInt32 = 2950
    public static let jsonb: UInt32 = 3802

    /// How a value of a type is written as JSON.
    public enum Mapping: Sendable, Equatable {
        case boolean
        case integer
        case float
        /// Embedded as-is (json, jsonb).
        case rawJSON
        /// bytea in hex text form, written as base64.
        case byteaBase64
        case timestamptz
        /// timestamp: ISO form with a `T` separator.
        case timestamp
        /// A JSON string of the text form (text, numeric, uuid, date, time, enums, domains, unknown types).
        case string
        /// A PostgreSQL array literal of the given element mapping.
        indirect case array(Mapping)
    }

    /// The mapping for a type OID; unknown OIDs (enums, domains, extension types) map to `.string`.
    public static func mapping(for typeOID: UInt32) -> Mapping {
        switch typeOID {
        case bool: return .boolean
        case int2, int4, int8, oidType, xid: return .integer
        case float4, float8: return .float
        case json, jsonb: return .rawJSON
        case bytea: return .byteaBase64
        case timestamptz: return .timestamptz
        case timestamp: return .timestamp
        default:
            if let element = arrayElement[typeOID] { return .array(mapping(for: element)) }
            return .string
        }
    }

    /// Array type OID → element type OID for the built-in arrays we map.
    static let arrayElement: [UInt32: UInt32] = [
        1000: bool, 1001: bytea, 1002: char, 1003: name, 1016: int8, 1005: int2, 1007: int4,
        1009: text, 1028: oidType, 199: json, 1021: float4, 1022: float8, 1014: bpchar, 1015: varchar,
        1182: date, 1183: time, 1115: timestamp, 1185: timestamptz, 1187: interval, 1231: numeric,
        2951: uuid, 3807: jsonb,
    ]
}
