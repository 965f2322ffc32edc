import BridgeCore
import Testing

/// The native format byte for byte: the parts the encoder formats once per transaction and per
/// operation must follow every change of transaction, operation and table.
@Suite struct NativeEncoderTests {
    static let items = RelationInfo(
        oid: 1, schema: "public", table: "items", replicaIdentity: .default,
        columns: [
            .init(name: "id", typeOID: 20, isIdentity: true), .init(name: "name", typeOID: 25),
            .init(name: "doc", typeOID: 25),
        ])
    static let tags = RelationInfo(
        oid: 2, schema: "public", table: "tags", replicaIdentity: .default,
        columns: [.init(name: "tag", typeOID: 25, isIdentity: true)])

    /// A row of text values (nil = NULL, "~" = unchanged TOAST) over `buffer`.
    static func row(_ values: [String?], into buffer: inout [UInt8]) -> [TupleValue] {
        values.map { value in
            guard let value else { return .null }
            if value == "~" { return .unchangedToast }
            let offset = Int32(buffer.count)
            buffer.append(contentsOf: Array(value.utf8))
            return .text(offset: offset, length: Int32(value.utf8.count))
        }
    }

    @Test func eventsAcrossTransactionsOperationsAndTables() {
        var buffer: [UInt8] = []
        let inserted = Self.row(["1", "a\tb", "long"], into: &buffer)
        let updated = Self.row(["1", "c", "~"], into: &buffer)
        let key = Self.row(["1", nil, nil], into: &buffer)
        let tag = Self.row(["x\"y"], into: &buffer)
        var encoder = NativeEncoder(database: "app")
        var out: [UInt8] = []
        buffer.withUnsafeBytes { bytes in
            let first = TransactionContext(commitLSN: LSN(0x1_0000_00A0), xid: 7, commitTime: 0, capture: .replication)
            let second = TransactionContext(
                commitLSN: LSN(0x1_0000_0100), xid: 8, commitTime: 1_000_000, capture: .replication)
            let changes: [(RowChange, TransactionContext)] = [
                (
                    .init(
                        op: .insert, relation: Self.items, lsn: LSN(0x1_0000_0010), ordinal: 0,
                        new: TupleView(values: inserted, buffer: bytes)), first
                ),
                (
                    .init(
                        op: .update, relation: Self.items, lsn: LSN(0x1_0000_0020), ordinal: 1,
                        new: TupleView(values: updated, buffer: bytes)), first
                ),
                (
                    .init(
                        op: .insert, relation: Self.tags, lsn: LSN(0x1_0000_0030), ordinal: 2,
                        new: TupleView(values: tag, buffer: bytes)), first
                ),
                (
                    .init(
                        op: .delete, relation: Self.items, lsn: LSN(0x1_0000_00F0), ordinal: 0,
                        old: TupleView(values: key, buffer: bytes), oldIsKeyOnly: true), second
                ),
            ]
            for (change, tx) in changes {
                encoder.encode(change, in: tx, into: &out)
                out.append(0x0A)
            }
        }
        let tail1 = #""commit_lsn":"1/A0","xid":7,"commit_time":"2000-01-01T00:00:00.000000Z","capture":"replication"}"#
        let tail2 =
            #""commit_lsn":"1/100","xid":8,"commit_time":"2000-01-01T00:00:01.000000Z","capture":"replication"}"#
        let expected = [
            #"{"id":"1/A0:0","op":"insert","source":{"db":"app","schema":"public","table":"items","lsn":"1/10",\#(tail1),"key":{"id":1},"before":null,"after":{"id":1,"name":"a\tb","doc":"long"}}"#,
            #"{"id":"1/A0:1","op":"update","source":{"db":"app","schema":"public","table":"items","lsn":"1/20",\#(tail1),"key":{"id":1},"before":null,"after":{"id":1,"name":"c"},"unchanged_toast":["doc"]}"#,
            #"{"id":"1/A0:2","op":"insert","source":{"db":"app","schema":"public","table":"tags","lsn":"1/30",\#(tail1),"key":{"tag":"x\"y"},"before":null,"after":{"tag":"x\"y"}}"#,
            #"{"id":"1/100:0","op":"delete","source":{"db":"app","schema":"public","table":"items","lsn":"1/F0",\#(tail2),"key":{"id":1},"before":{"id":1},"after":null}"#,
        ]
        #expect(String(decoding: out, as: UTF8.self) == expected.joined(separator: "\n") + "\n")
    }
}
