import BridgeCore
import Testing

@testable import PostgresSource

/// The decoder's relation cache stays bounded however many relations a connection announces
/// (TimescaleDB creates one per chunk), and what it evicted is reported, never guessed.
@Suite("pgoutput relation cache")
struct RelationCacheTests {
    /// A Relation message: one text column `v`.
    static func relation(oid: UInt32, schema: String = "public", name: String) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "R")]
        append(oid, to: &bytes)
        bytes += Array(schema.utf8) + [0] + Array(name.utf8) + [0]
        bytes.append(UInt8(ascii: "d"))  // replica identity default
        bytes += [0, 1]  // one column
        bytes.append(1)  // part of the key
        bytes += Array("v".utf8) + [0]
        append(UInt32(25), to: &bytes)  // text
        append(UInt32.max, to: &bytes)  // type modifier -1
        return bytes
    }

    /// An Insert message with the text value `value`.
    static func insert(oid: UInt32, value: String) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "I")]
        append(oid, to: &bytes)
        bytes.append(UInt8(ascii: "N"))
        bytes += [0, 1, UInt8(ascii: "t")]
        append(UInt32(value.utf8.count), to: &bytes)
        bytes += Array(value.utf8)
        return bytes
    }

    static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    static func decode(_ bytes: [UInt8], _ decoder: inout PgOutputDecoder) throws -> PgOutputMessage {
        try bytes.withUnsafeBytes { try decoder.decode($0) }
    }

    @Test func tenThousandRelationsKeepTheCacheBounded() throws {
        var decoder = PgOutputDecoder()
        for oid in UInt32(1)...10_000 {
            _ = try Self.decode(Self.relation(oid: oid, name: "t\(oid)"), &decoder)
            _ = try Self.decode(Self.insert(oid: oid, value: "row \(oid)"), &decoder)
        }
        #expect(decoder.relations.count == decoder.maxRelations)
        #expect(decoder.evictions == 10_000 - decoder.maxRelations)
        #expect(decoder.relations[10_000] != nil && decoder.relations[1] == nil)
        // A change for an evicted relation is an error the stream answers by reconnecting (the
        // server announces every relation again on a new connection), never a guess.
        #expect(throws: PgOutputError.unknownRelation(1)) {
            _ = try Self.decode(Self.insert(oid: 1, value: "late"), &decoder)
        }
        // Announced again, it is the newest: the next evictions take older ones.
        _ = try Self.decode(Self.relation(oid: 1, name: "t1"), &decoder)
        _ = try Self.decode(Self.relation(oid: 10_001, name: "t10001"), &decoder)
        #expect(decoder.relations[1] != nil && decoder.relations.count == decoder.maxRelations)
    }

    @Test func aDroppedChunkIsForgotten() throws {
        var decoder = PgOutputDecoder()
        decoder.relationLookup = { _, _, _ in
            PgOutputDecoder.RelationMetadata(reportAs: (schema: "public", table: "conditions"))
        }
        _ = try Self.decode(
            Self.relation(oid: 7, schema: "_timescaledb_internal", name: "_hyper_1_1_chunk"), &decoder)
        _ = try Self.decode(
            Self.relation(oid: 8, schema: "_timescaledb_internal", name: "_hyper_1_2_chunk"), &decoder)
        decoder.forgetChunk("_timescaledb_internal._hyper_1_1_chunk")
        #expect(decoder.relations[7] == nil && decoder.relations[8]?.chunk == "_timescaledb_internal._hyper_1_2_chunk")
        #expect(decoder.evictions == 1)
    }
}
