import Testing

@testable import PostgresSink

/// The key-hash set a delivery uses to tell whether a key repeats.
@Suite struct KeyHashesTests {
    func insert(_ set: inout KeyHashes, _ key: String) -> Bool {
        Array(key.utf8).withUnsafeBufferPointer { set.insert($0) }
    }

    @Test func aRepeatedKeyIsFoundAmongManyAcrossGrowth() {
        var set = KeyHashes()
        for id in 0..<100_000 {
            #expect(insert(&set, #"{"id":\#(id)}"#), "key \(id) is new")
        }
        #expect(set.count == 100_000)
        #expect(!insert(&set, #"{"id":4711}"#))
        #expect(!insert(&set, #"{"id":99999}"#))
        #expect(insert(&set, #"{"id":100000}"#))
    }

    @Test func keysThatDifferOnlyInTheirTailOrLengthHashApart() {
        let keys = [
            "", "a", "ab", "abcdefgh", "abcdefghi", "abcdefgh\u{0}", #"{"k":"abcdefgh"}"#, #"{"k":"abcdefgi"}"#,
        ]
        let hashes = keys.map { key in Array(key.utf8).withUnsafeBufferPointer { KeyHashes.hash($0) } }
        #expect(Set(hashes).count == keys.count)
        var set = KeyHashes()
        for key in keys { #expect(insert(&set, key)) }
        for key in keys { #expect(!insert(&set, key)) }
    }
}
