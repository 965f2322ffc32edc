import CLibPQ

/// One libpq result, freed when the object goes away. Values are copied out as Swift strings.
public final class PGResult {
    public let handle: OpaquePointer

    public init(_ handle: OpaquePointer) { self.handle = handle }
    deinit { PQclear(handle) }

    var status: ExecStatusType { PQresultStatus(handle) }
    public var rowCount: Int { Int(PQntuples(handle)) }
    public var columnCount: Int { Int(PQnfields(handle)) }

    public func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(handle, Int32(row), Int32(column)) != 0 }

    public func string(_ row: Int, _ column: Int) -> String? {
        guard row < rowCount, column < columnCount, !isNull(row, column) else { return nil }
        return String(cString: PQgetvalue(handle, Int32(row), Int32(column)))
    }

    public func string(_ row: Int, _ name: String) -> String? {
        let column = Int(PQfnumber(handle, name))
        return column < 0 ? nil : string(row, column)
    }

    public var errorField: (sqlState: String?, message: String) {
        let fields = errorFields
        return (fields.sqlState, Self.joinedMessage(fields))
    }

    /// The primary message with its detail and hint, as one line for logs and errors.
    static func joinedMessage(_ fields: (sqlState: String?, primary: String, detail: String?, hint: String?)) -> String
    {
        var message = fields.primary
        if let detail = fields.detail { message += " (\(detail))" }
        if let hint = fields.hint { message += " Hint: \(hint)" }
        return message
    }

    /// The error's SQLSTATE, primary message, detail and hint, apart.
    public var errorFields: (sqlState: String?, primary: String, detail: String?, hint: String?) {
        let state = PQresultErrorField(handle, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        let primary = PQresultErrorField(handle, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
        let detail = PQresultErrorField(handle, Int32(UInt8(ascii: "D"))).map { String(cString: $0) }
        let hint = PQresultErrorField(handle, Int32(UInt8(ascii: "H"))).map { String(cString: $0) }
        return (
            state, primary ?? String(cString: PQresultErrorMessage(handle)).trimmingTrailingNewlines(), detail, hint
        )
    }
}

extension String {
    public func trimmingTrailingNewlines() -> String {
        var s = self
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}

extension PGResult {
    /// The raw text bytes of a value, valid while the result lives; nil for SQL NULL.
    public func withValue<T>(_ row: Int, _ column: Int, _ body: (UnsafeRawBufferPointer?) throws -> T) rethrows -> T {
        if PQgetisnull(handle, Int32(row), Int32(column)) != 0 { return try body(nil) }
        let pointer = PQgetvalue(handle, Int32(row), Int32(column))
        let length = Int(PQgetlength(handle, Int32(row), Int32(column)))
        return try body(UnsafeRawBufferPointer(start: pointer, count: length))
    }
}
