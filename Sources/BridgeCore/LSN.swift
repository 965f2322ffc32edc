/// A PostgreSQL write-ahead-log position (an unsigned 64-bit byte offset).
///
/// The text form is `HI/LO` in upper-case hexadecimal, as PostgreSQL prints it. Parsing also
/// accepts zero-padded halves (`16/0B374D84`). LSNs compare numerically, never as strings.
public struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public static let zero = LSN(0)

    @inlinable
    public init(_ value: UInt64) { self.value = value }

    /// Parses `HI/LO`; returns nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
            parts[0].count <= 8, parts[1].count <= 8,
            let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16)
        else { return nil }
        self.value = high << 32 | low
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/"
            + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    /// Appends the text form without allocating.
    @inlinable
    public func write(into out: inout [UInt8]) {
        LSN.appendHex(UInt32(truncatingIfNeeded: value >> 32), into: &out)
        out.append(UInt8(ascii: "/"))
        LSN.appendHex(UInt32(truncatingIfNeeded: value), into: &out)
    }

    @inlinable
    static func appendHex(_ v: UInt32, into out: inout [UInt8]) {
        if v == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var shift = (31 - v.leadingZeroBitCount) & ~3
        while shift >= 0 {
            let nibble = UInt8((v >> UInt32(shift)) & 0xF)
            out.append(nibble < 10 ? 48 + nibble : 55 + nibble)
            shift -= 4
        }
    }
}
