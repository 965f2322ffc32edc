import Testing

@testable import PostgresSink

/// The binary COPY writer's conversions, without a server (the integration test compares them
/// with PostgreSQL's own input functions).
@Suite struct CopyBinaryConversionTests {
    func timestamp(_ text: String, zoned: Bool = true) -> Int64? {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { CopyBinary.timestamp($0, 0..<$0.count, zoned: zoned) }
    }

    @Test func timestampsAreMicrosecondsSince2000() {
        #expect(timestamp("2000-01-01T00:00:00Z") == 0)
        #expect(timestamp("2000-01-01T01:00:00+01:00") == 0)
        #expect(timestamp("1999-12-31T23:59:59.999999Z") == -1)
        #expect(timestamp("2000-01-02 00:00:00.5+00") == 86_400_500_000)
        #expect(timestamp("1970-01-01T00:00:00Z") == -946_684_800_000_000)
        let march: Int64 = 60 * 86_400 * 1_000_000
        #expect(timestamp("2000-03-01T00:00:00", zoned: false) == march)
    }

    @Test func timestampsInOtherFormsAreLeftToTheTextInput() {
        for text in [
            "2023-02-29T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00.1234567Z",
            "2024-01-01T00:00:00+0530", "0000-01-01T00:00:00Z", "2024-1-01T00:00:00Z", "infinity",
            "2024-01-01T00:00:00Z ", "2024-01-01T00:00:60Z",
        ] {
            #expect(timestamp(text) == nil, "\(text)")
        }
        #expect(timestamp("2024-01-01T00:00:00Z", zoned: false) == nil)
    }

    @Test func numbersUUIDsAndNulls() throws {
        func field(_ json: String, _ kind: CopyBinary.Kind) throws -> [UInt8] {
            let bytes = Array(json.utf8)
            var copy = CopyBinary()
            try bytes.withUnsafeBufferPointer { try copy.value($0, 0..<$0.count, kind: kind) }
            return copy.bytes
        }
        #expect(try field("-2", .int4) == [0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFE])
        #expect(try field("null", .int8) == [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try field("1.5", .float8) == [0, 0, 0, 8, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0])
        #expect(try field("true", .bool) == [0, 0, 0, 1, 1])
        #expect(try field(#""a\"b""#, .text) == [0, 0, 0, 3, 0x61, 0x22, 0x62])
        #expect(try field(#"{"a":1}"#, .jsonb) == [0, 0, 0, 8, 1] + Array(#"{"a":1}"#.utf8))
        #expect(
            try field(#""00112233-4455-6677-8899-aabbccddeeff""#, .uuid).suffix(16) == [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
            ])
        #expect(throws: CopyBinary.Unconvertible.self) { try field("1.0", .int8) }
        #expect(throws: CopyBinary.Unconvertible.self) { try field("9223372036854775808", .int8) }
        #expect(throws: CopyBinary.Unconvertible.self) { try field(#""t""#, .bool) }
    }
}
