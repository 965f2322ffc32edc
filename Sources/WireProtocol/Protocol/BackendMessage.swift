import NIOCore

/// A column of a result, as RowDescription describes it (values are always sent as text).
public struct ResultColumn: Sendable, Equatable {
    public var name: String
    public var type: SQLType

    public init(_ name: String, _ type: SQLType) {
        self.name = name
        self.type = type
    }
}

/// An error sent to the client as ErrorResponse: severity, SQLSTATE, message and optional
/// detail and hint.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var detail: String?
    public var hint: String?
    public var severity: String

    public init(
        _ code: String, _ message: String, detail: String? = nil, hint: String? = nil, severity: String = "ERROR"
    ) {
        self.code = code
        self.message = message
        self.detail = detail
        self.hint = hint
        self.severity = severity
    }

    public var description: String { "\(code): \(message)" + (hint.map { " (\($0))" } ?? "") }

    public static func syntax(_ message: String, hint: String? = nil) -> WireError {
        WireError("42601", message, hint: hint)
    }

    public static func unsupported(_ message: String, hint: String? = nil) -> WireError {
        WireError("0A000", message, hint: hint)
    }
}

/// Writers of backend (server) messages.
extension ByteBuffer {
    mutating func writeMessage(_ type: UInt8, _ body: (inout ByteBuffer) -> Void) {
        writeInteger(type)
        let lengthIndex = writerIndex
        writeInteger(Int32(0))
        body(&self)
        setInteger(Int32(writerIndex - lengthIndex), at: lengthIndex)
    }

    mutating func writeCString(_ text: String) {
        writeString(text)
        writeInteger(UInt8(0))
    }

    mutating func writeAuthentication(_ code: Int32, _ data: [UInt8] = []) {
        writeMessage(UInt8(ascii: "R")) {
            $0.writeInteger(code)
            $0.writeBytes(data)
        }
    }

    mutating func writeParameterStatus(_ name: String, _ value: String) {
        writeMessage(UInt8(ascii: "S")) {
            $0.writeCString(name)
            $0.writeCString(value)
        }
    }

    mutating func writeBackendKeyData(processID: Int32, secretKey: Int32) {
        writeMessage(UInt8(ascii: "K")) {
            $0.writeInteger(processID)
            $0.writeInteger(secretKey)
        }
    }

    mutating func writeReadyForQuery(_ status: UInt8) {
        writeMessage(UInt8(ascii: "Z")) { $0.writeInteger(status) }
    }

    mutating func writeRowDescription(_ columns: [ResultColumn]) {
        writeMessage(UInt8(ascii: "T")) {
            $0.writeInteger(Int16(columns.count))
            for column in columns {
                $0.writeCString(column.name)
                $0.writeInteger(Int32(0))  // table OID
                $0.writeInteger(Int16(0))  // column number
                $0.writeInteger(column.type.oid)
                $0.writeInteger(column.type.length)
                $0.writeInteger(Int32(-1))  // type modifier
                $0.writeInteger(Int16(0))  // text format
            }
        }
    }

    mutating func writeDataRow(_ values: [String?]) {
        writeMessage(UInt8(ascii: "D")) {
            $0.writeInteger(Int16(values.count))
            for value in values {
                guard let value else {
                    $0.writeInteger(Int32(-1))
                    continue
                }
                let lengthIndex = $0.writerIndex
                $0.writeInteger(Int32(0))
                let written = $0.writeString(value)
                $0.setInteger(Int32(written), at: lengthIndex)
            }
        }
    }

    mutating func writeCommandComplete(_ tag: String) {
        writeMessage(UInt8(ascii: "C")) { $0.writeCString(tag) }
    }

    mutating func writeError(_ error: WireError, notice: Bool = false) {
        writeMessage(UInt8(ascii: notice ? "N" : "E")) { body in
            func field(_ code: Character, _ value: String) {
                body.writeInteger(UInt8(ascii: code.unicodeScalars.first!))
                body.writeCString(value)
            }
            field("S", error.severity)
            field("V", error.severity)
            field("C", error.code)
            field("M", error.message)
            if let detail = error.detail { field("D", detail) }
            if let hint = error.hint { field("H", hint) }
            body.writeInteger(UInt8(0))
        }
    }

    mutating func writeParameterDescription(_ types: [SQLType]) {
        writeMessage(UInt8(ascii: "t")) {
            $0.writeInteger(Int16(types.count))
            for type in types { $0.writeInteger(type.oid) }
        }
    }

    mutating func writeEmpty(_ type: Character) {
        writeMessage(UInt8(ascii: type.unicodeScalars.first!)) { _ in }
    }
}
