import Glibc

extension Array where Element == UInt8 {
    /// Byte equality through memcmp: the comparisons of names per event are hot.
    @inline(__always)
    func equals(_ other: UnsafeBufferPointer<UInt8>) -> Bool {
        guard count == other.count else { return false }
        guard count > 0 else { return true }
        return withUnsafeBufferPointer { memcmp($0.baseAddress!, other.baseAddress!, count) == 0 }
    }
}
