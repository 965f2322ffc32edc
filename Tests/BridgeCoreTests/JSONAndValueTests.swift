import BridgeCore
import Foundation
import Testing

@Suite("JSON output and value mapping")
struct JSONAndValueTests {
    func json(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    func escaped(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { JSONBytes.appendString($0, into: &out) }
        return json(out)
    }

    func value(_ text: String, _ oid: UInt32) -> String {
        var out: [UInt8] = []
        var copy = text
        copy.withUTF8 {
            ValueEncoder.append(text: UnsafeRawBufferPointer($0), mapping: PostgresType.mapping(for: oid), into: &out)
        }
        return json(out)
    }

    @Test func escapesControlCharactersAndQuotes() {
        #expect(
            escaped(Array("a\"b\\c\n\r\t\u{8}\u{C}\u{1}\u{1F}\u{7F}".utf8))
                == #""a\"b\\c\n\r\t\b\f\u0001\u001f\#u{7F}""#)
    }

    @Test func keepsValidUTF8() {
        #expect(escaped(Array("café 😀 ✓".utf8)) == "\"café 😀 ✓\"")
    }

    @Test func replacesInvalidUTF8() {
        // lone continuation, overlong, surrogate, truncated sequence at the end, > U+10FFFF
        let inputs: [[UInt8]] = [
            [0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0x61, 0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80], [0xFF],
        ]
        for input in inputs {
            let out = escaped(input)
            #expect(out.contains("\u{FFFD}"), "\(input)")
            #expect((try? JSONSerialization.jsonObject(with: Data(out.utf8), options: .fragmentsAllowed)) != nil)
        }
    }

    @Test func everyByteSequenceGivesValidJSON() throws {
        var state: UInt64 = 1
        for _ in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(state % 24) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                bytes.append(UInt8(truncatingIfNeeded: state >> 33))
            }
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let out = escaped(bytes)
            #expect(
                (try? JSONSerialization.jsonObject(with: Data(out.utf8), options: .fragmentsAllowed)) != nil, "\(bytes)"
            )
        }
    }

    @Test func integers() {
        var out: [UInt8] = []
        for v: Int64 in [0, 7, -1, 10, 1234567890, Int64.max, Int64.min] {
            out.removeAll()
            JSONBytes.appendInt(v, into: &out)
            #expect(json(out) == String(v))
        }
    }

    @Test func base64() {
        for (input, expected) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")] {
            var out: [UInt8] = []
            Array(input.utf8).withUnsafeBytes { JSONBytes.appendBase64($0, into: &out) }
            #expect(json(out) == expected)
        }
    }

    @Test func valueMapping() {
        #expect(value("t", PostgresType.bool) == "true")
        #expect(value("f", PostgresType.bool) == "false")
        #expect(value("-42", PostgresType.int4) == "-42")
        #expect(value("1.5e+30", PostgresType.float8) == "1.5e+30")
        #expect(value("NaN", PostgresType.float8) == "\"NaN\"")
        #expect(value("-Infinity", PostgresType.float4) == "\"-Infinity\"")
        #expect(value("12.50", PostgresType.numeric) == "\"12.50\"")
        #expect(value("{\"a\": [1]}", PostgresType.jsonb) == "{\"a\": [1]}")
        #expect(value("{\n  \"a\": 1\r\n}", PostgresType.json) == "{   \"a\": 1  }")
        #expect(value("{\"{\\\"k\\\":\n1}\"}", 199) == "[{\"k\": 1}]")
        #expect(value("{\"a\": \"\u{FF}\"}", PostgresType.json) == "{\"a\": \"\u{FF}\"}")
        #expect(value("\\x00ff", PostgresType.bytea) == "\"AP8=\"")
        #expect(value("2026-11-20 10:00:00+00", PostgresType.timestamptz) == "\"2026-11-20T10:00:00.000000Z\"")
        #expect(
            value("2026-11-20 10:00:00.5+05:30", PostgresType.timestamptz) == "\"2026-11-20T10:00:00.500000+05:30\"")
        #expect(value("infinity", PostgresType.timestamptz) == "\"infinity\"")
        #expect(value("0044-03-15 12:00:00+00 BC", PostgresType.timestamptz) == "\"0044-03-15 12:00:00+00 BC\"")
        #expect(value("2026-11-20 10:00:00.25", PostgresType.timestamp) == "\"2026-11-20T10:00:00.25\"")
        #expect(value("{1,NULL,3}", 1007) == "[1,null,3]")
        #expect(value("[0:1]={7,8}", 1007) == "[7,8]")
        #expect(value("{{\"a b\",c},{\"\\\\\",NULL}}", 1009) == #"[["a b","c"],["\\",null]]"#)
        #expect(value("{t,f}", 1000) == "[true,false]")
        #expect(value("{\"{\\\"k\\\": 1}\"}", 3807) == #"[{"k": 1}]"#)
        #expect(value("{broken", 1007) == "\"{broken\"")
        #expect(value("happy", 16436) == "\"happy\"")
    }

    @Test func timestamps() {
        var out: [UInt8] = []
        PostgresTime.writeRFC3339(0, into: &out)
        #expect(json(out) == "2000-01-01T00:00:00.000000Z")
        out.removeAll()
        PostgresTime.writeRFC3339(-1, into: &out)
        #expect(json(out) == "1999-12-31T23:59:59.999999Z")
        out.removeAll()
        PostgresTime.writeRFC3339(PostgresTime.fromUnixMicroseconds(1_782_000_000_123_456), into: &out)
        #expect(json(out) == "2026-06-21T00:00:00.123456Z")
    }

    @Test func lsn() {
        #expect(LSN("16/B374D848")?.value == 0x16_B374_D848)
        #expect(LSN("16/0B374D84")?.value == 0x16_0B37_4D84)
        #expect(LSN("0/0") == .zero)
        #expect(LSN("16B374D848") == nil)
        #expect(LSN("x/1") == nil)
        #expect(LSN("1/123456789") == nil)
        #expect(LSN(0x16_0B37_4D84).description == "16/B374D84")
        #expect(LSN("9/0")! > LSN("8/FFFFFFFF")!)
        var out: [UInt8] = []
        LSN(0x1_0000_00A0).write(into: &out)
        #expect(json(out) == "1/A0")
    }
}
