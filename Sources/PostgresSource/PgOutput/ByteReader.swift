import BridgeCore

/// Reads big-endian protocol fields from a buffer with unaligned loads; every read is
/// bounds-checked and a short buffer throws instead of crashing.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var position: Int

    init(_ buffer: UnsafeRawBufferPointer, position: Int = 0) {
        self.buffer = buffer
        self.position = position
    }

    var remaining: Int { buffer.count - position }

    @inline(__always)
    mutating func need(_ n: Int, _ what: StaticString) throws {
        guard n >= 0, remaining >= n else { throw PgOutputError.truncated(what: "\(what)", offset: position) }
    }

    @inline(__always)
    mutating func uint8(_ what: StaticString = "byte") throws -> UInt8 {
        try need(1, what)
        defer { position += 1 }
        return buffer[position]
    }

    /// A big-endian unsigned integer of `T`'s width.
    @inline(__always)
    mutating func bigEndian<T: FixedWidthInteger & UnsignedInteger>(_ what: StaticString) throws -> T {
        let size = MemoryLayout<T>.size
        try need(size, what)
        defer { position += size }
        return T(bigEndian: buffer.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    @inline(__always)
    mutating func uint16(_ what: StaticString = "int16") throws -> UInt16 { try bigEndian(what) }

    @inline(__always)
    mutating func uint32(_ what: StaticString = "int32") throws -> UInt32 { try bigEndian(what) }

    @inline(__always)
    mutating func int32(_ what: StaticString = "int32") throws -> Int32 { Int32(bitPattern: try uint32(what)) }

    @inline(__always)
    mutating func uint64(_ what: StaticString = "int64") throws -> UInt64 { try bigEndian(what) }

    @inline(__always)
    mutating func int64(_ what: StaticString = "int64") throws -> Int64 { Int64(bitPattern: try uint64(what)) }

    @inline(__always)
    mutating func lsn(_ what: StaticString = "LSN") throws -> LSNValue { LSNValue(try uint64(what)) }

    /// A NUL-terminated string.
    mutating func cString(_ what: StaticString = "string") throws -> String {
        var end = position
        while end < buffer.count && buffer[end] != 0 { end += 1 }
        guard end < buffer.count else { throw PgOutputError.truncated(what: "\(what)", offset: position) }
        defer { position = end + 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[position..<end]), as: UTF8.self)
    }
}

typealias LSNValue = LSN
