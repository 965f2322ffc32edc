import TestSupport
import Testing

@testable import PostgresSource

@Suite("pgoutput decoder never crashes on bad input")
struct DecoderRobustnessTests {
    /// Every proper prefix of every captured message must throw, with the decoder in the state
    /// it has at that point of the stream (relations known, stream flag set).
    @Test(arguments: Fixtures.all)
    func truncatedMessagesThrow(fixture: String) throws {
        var decoder = PgOutputDecoder()
        for bytes in try Fixtures.messages(fixture) {
            let step = max(1, bytes.count / 200)  // long TOAST rows: sample the cut points
            for cut in stride(from: 0, to: bytes.count, by: step) {
                var copy = decoder
                let prefix = Array(bytes[0..<cut])
                #expect(throws: (any Error).self, "\(fixture): prefix \(cut) of \(bytes.count) decoded") {
                    try prefix.withUnsafeBytes { _ = try copy.decode($0) }
                }
            }
            _ = try bytes.withUnsafeBytes { try decoder.decode($0) }
        }
    }

    @Test func randomBytesNeverCrash() throws {
        var decoder = PgOutputDecoder()
        for bytes in try Fixtures.messages("types") { _ = try bytes.withUnsafeBytes { try decoder.decode($0) } }
        var generator = SplitMix(seed: 42)
        let types: [UInt8] = Array("BCORYIUDTMSEcAbPKrp".utf8) + [0, 0xFF]
        var decodedCount = 0
        for _ in 0..<20_000 {
            let length = Int(generator.next() % 64)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if !bytes.isEmpty { bytes[0] = types[Int(generator.next() % UInt64(types.count))] }
            var copy = decoder
            if (try? bytes.withUnsafeBytes({ try copy.decode($0) })) != nil { decodedCount += 1 }
        }
        // Some random inputs are valid short messages (e.g. Stream Stop); most are rejected.
        #expect(decodedCount < 20_000)
    }

    @Test func mutatedRealMessagesNeverCrash() throws {
        var decoder = PgOutputDecoder()
        let messages = try Fixtures.messages("basic_crud")
        var generator = SplitMix(seed: 7)
        for bytes in messages {
            for _ in 0..<300 {
                var mutated = bytes
                let flips = 1 + Int(generator.next() % 3)
                for _ in 0..<flips where !mutated.isEmpty {
                    mutated[Int(generator.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
                var copy = decoder
                _ = try? mutated.withUnsafeBytes { try copy.decode($0) }
            }
            _ = try bytes.withUnsafeBytes { try decoder.decode($0) }
        }
    }

    @Test func unknownRelationIsAnError() throws {
        var decoder = PgOutputDecoder()
        let insert = try Fixtures.messages("basic_crud")[2]
        #expect(throws: PgOutputError.unknownRelation(16385)) {
            try insert.withUnsafeBytes { _ = try decoder.decode($0) }
        }
    }
}
