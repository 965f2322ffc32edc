/// Why a pgoutput message could not be decoded.
public enum PgOutputError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case truncated(what: String, offset: Int)
    case unknownMessageType(UInt8)
    case unknownRelation(UInt32)
    case invalidTupleKind(UInt8, offset: Int)
    case columnCountMismatch(relation: String, expected: Int, got: Int)
    case invalidValue(String)

    public var description: String {
        switch self {
        case .empty: "empty pgoutput message"
        case .truncated(let what, let offset): "pgoutput message truncated while reading \(what) at byte \(offset)"
        case .unknownMessageType(let type): "unknown pgoutput message type 0x\(String(type, radix: 16))"
        case .unknownRelation(let oid): "change for relation OID \(oid) arrived before its Relation message"
        case .invalidTupleKind(let kind, let offset):
            "invalid tuple column kind 0x\(String(kind, radix: 16)) at byte \(offset)"
        case .columnCountMismatch(let relation, let expected, let got):
            "tuple for \(relation) has \(got) columns, its Relation message announced \(expected)"
        case .invalidValue(let what): "invalid value: \(what)"
        }
    }
}
