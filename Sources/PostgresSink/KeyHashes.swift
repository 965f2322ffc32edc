/// The hashes of the keys a delivery's table has seen, to tell whether some key repeats.
///
/// Open addressing over 64-bit hashes: one multiply-mix per 8 bytes of key and no second
/// hashing, where `Set<Int>` of a `Hasher` result hashed every key twice with SipHash (3 % of
/// pgbridge's CPU on `scripts/bench-apply`). A collision only makes the apply pick the last change
/// per key by sorting (`repeatsKeys`), never a wrong result, so the hash need not resist
/// crafted keys.
struct KeyHashes {
    private var slots: [UInt64] = []
    private(set) var count = 0

    /// Records the key's hash; false when the same hash was recorded before.
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>) -> Bool {
        insert(hash: Self.hash(key))
    }

    mutating func insert(hash: UInt64) -> Bool {
        if (count + 1) * 2 > slots.count { grow() }
        let stored = hash == 0 ? 1 : hash
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: stored) & mask
        while true {
            let slot = slots[index]
            if slot == 0 {
                slots[index] = stored
                count += 1
                return true
            }
            if slot == stored { return false }
            index = (index + 1) & mask
        }
    }

    private mutating func grow() {
        let old = slots
        slots = [UInt64](repeating: 0, count: max(1024, old.count * 2))
        count = 0
        for hash in old where hash != 0 { _ = insert(hash: hash) }
    }

    /// A 64-bit hash of the bytes: eight at a time, each mixed by a multiply and a shift.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
        var state = UInt64(truncatingIfNeeded: bytes.count) &* multiplier
        guard let base = bytes.baseAddress else { return state }
        let raw = UnsafeRawPointer(base)
        var offset = 0
        while offset + 8 <= bytes.count {
            let word = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            state = (state ^ word) &* multiplier
            state ^= state >> 29
            offset += 8
        }
        if offset < bytes.count {
            var tail: UInt64 = 0
            for (shift, i) in (offset..<bytes.count).enumerated() { tail |= UInt64(bytes[i]) << (8 * UInt64(shift)) }
            state = (state ^ tail) &* multiplier
            state ^= state >> 29
        }
        state = (state ^ (state >> 32)) &* multiplier
        return state ^ (state >> 29)
    }
}
