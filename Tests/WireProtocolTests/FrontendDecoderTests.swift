import NIOCore
import TestSupport
import Testing

@testable import WireProtocol

@Suite("Frontend message decoder")
struct FrontendDecoderTests {
    static func startup(_ parameters: [(String, String)]) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(Int32(196_608))
        for (name, value) in parameters {
            body.writeCString(name)
            body.writeCString(value)
        }
        body.writeInteger(UInt8(0))
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(body.readableBytes + 4))
        buffer.writeBuffer(&body)
        return buffer
    }

    @Test func decodesStartupThenTypedMessagesAcrossPartialReads() throws {
        var stream = ByteBuffer()
        stream.writeBytes([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F])  // SSLRequest
        var startup = Self.startup([("user", "bridge"), ("database", "pgbridge")])
        stream.writeBuffer(&startup)
        stream.writeMessage(UInt8(ascii: "Q")) { $0.writeCString("SELECT 1") }
        stream.writeMessage(UInt8(ascii: "P")) {
            $0.writeCString("s1")
            $0.writeCString("SELECT $1::int")
            $0.writeInteger(Int16(1))
            $0.writeInteger(Int32(23))
        }
        stream.writeMessage(UInt8(ascii: "B")) {
            $0.writeCString("")
            $0.writeCString("s1")
            $0.writeInteger(Int16(0))
            $0.writeInteger(Int16(2))
            $0.writeInteger(Int32(2))
            $0.writeString("42")
            $0.writeInteger(Int32(-1))
            $0.writeInteger(Int16(0))
        }
        stream.writeMessage(UInt8(ascii: "S")) { _ in }
        let bytes = Array(stream.readableBytesView)
        // Fed one byte at a time: every message comes out once, whole.
        var decoder = FrontendDecoder()
        var pending = ByteBuffer()
        var messages: [FrontendMessage] = []
        for byte in bytes {
            pending.writeInteger(byte)
            while let message = try decoder.decodeMessage(&pending) { messages.append(message) }
        }
        #expect(messages.count == 6)
        #expect(messages[0] == .sslRequest)
        #expect(messages[1] == .startup(parameters: ["user": "bridge", "database": "pgbridge"]))
        #expect(messages[2] == .query("SELECT 1"))
        #expect(messages[3] == .parse(name: "s1", query: "SELECT $1::int", parameterTypes: [23]))
        #expect(
            messages[4]
                == .bind(
                    portal: "", statement: "s1", parameterFormats: [], parameters: [ByteBuffer(string: "42"), nil],
                    resultFormats: []))
        #expect(messages[5] == .sync)
    }

    @Test func refusesBadLengthsAndTruncatedBodies() throws {
        var decoder = FrontendDecoder()
        var huge = ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF, 0, 3, 0, 0])
        #expect(throws: ProtocolViolation.self) { _ = try decoder.decodeMessage(&huge) }

        var ready = FrontendDecoder()
        var startup = Self.startup([("user", "u")])
        _ = try ready.decodeMessage(&startup)
        var negative = ByteBuffer(bytes: [UInt8(ascii: "Q"), 0xFF, 0xFF, 0xFF, 0xF0])
        #expect(throws: ProtocolViolation.self) { _ = try ready.decodeMessage(&negative) }
        var truncatedBind = ByteBuffer()
        truncatedBind.writeMessage(UInt8(ascii: "B")) {
            $0.writeCString("")
            $0.writeCString("")
            $0.writeInteger(Int16(0))
            $0.writeInteger(Int16(3))
            $0.writeInteger(Int32(100))
        }
        #expect(throws: ProtocolViolation.self) { _ = try ready.decodeMessage(&truncatedBind) }
        // Before the login, 10 kB at most.
        var large = ByteBuffer(bytes: [UInt8(ascii: "Q"), 0, 0, 0x4E, 0x20])  // 20,000 bytes
        var fresh = FrontendDecoder()
        var freshStartup = Self.startup([("user", "u")])
        _ = try fresh.decodeMessage(&freshStartup)
        #expect(throws: ProtocolViolation.self) { _ = try fresh.decodeMessage(&large) }
        var unterminated = ByteBuffer()
        unterminated.writeMessage(UInt8(ascii: "Q")) { $0.writeString("SELECT 1") }
        #expect(throws: ProtocolViolation.self) { _ = try ready.decodeMessage(&unterminated) }
    }

    /// Random and mutated inputs: the decoder either decodes, waits for more, or throws a
    /// ProtocolViolation; it never crashes or reads past its input.
    @Test func fuzzedInputNeverCrashes() throws {
        var generator = SplitMix(seed: 0x5EED)
        var valid = ByteBuffer()
        var startup = Self.startup([("user", "bridge")])
        valid.writeBuffer(&startup)
        valid.writeMessage(UInt8(ascii: "Q")) { $0.writeCString("SELECT 1") }
        valid.writeMessage(UInt8(ascii: "E")) {
            $0.writeCString("")
            $0.writeInteger(Int32(0))
        }
        let template = Array(valid.readableBytesView)
        var outcomes = (decoded: 0, violations: 0)
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                bytes = template
                for _ in 0...(generator.next() % 4) {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
                bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            }
            // Whole or in pieces, the same bytes decode to the same messages and the same
            // violation: the decoder never consumes part of a message it cannot finish.
            let whole = Self.decode(bytes, pieces: bytes.count)
            let pieces = Self.decode(bytes, pieces: 1 + Int(generator.next() % 7))
            #expect(whole == pieces, "round \(round): \(bytes)")
            outcomes.decoded += whole.messages.count
            if whole.violation != nil { outcomes.violations += 1 }
        }
        #expect(outcomes.decoded > 1_000 && outcomes.violations > 1_000, "\(outcomes)")
    }
}

extension FrontendDecoderTests {
    struct Decoded: Equatable {
        var messages: [FrontendMessage] = []
        var violation: ProtocolViolation?
        /// Bytes left unread at the end (without a violation): a message still incomplete.
        var leftover = 0
    }

    /// Feeds `bytes` to one decoder `pieces` bytes at a time, decoding after each piece.
    static func decode(_ bytes: [UInt8], pieces: Int) -> Decoded {
        var decoder = FrontendDecoder()
        var buffer = ByteBuffer()
        var decoded = Decoded()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + max(1, pieces))
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            do throws(ProtocolViolation) {
                while let message = try decoder.decodeMessage(&buffer) { decoded.messages.append(message) }
            } catch {
                decoded.violation = error
                return decoded
            }
        }
        decoded.leftover = buffer.readableBytes
        return decoded
    }
}
