import BridgeCore
import Testing

@testable import PostgresSource

/// Decodes every message of a fixture, returning the messages plus the tuple strings of row
/// messages (captured while the buffer is alive).
struct DecodedFixture {
    var messages: [PgOutputMessage] = []
    var newRows: [Int: [String?]] = [:]
    var oldRows: [Int: [String?]] = [:]
    var newKinds: [Int: [TupleValue]] = [:]
    var messageContents: [Int: [UInt8]] = [:]

    init(_ name: String, decoder: inout PgOutputDecoder) throws {
        for (index, bytes) in try Fixtures.messages(name).enumerated() {
            try bytes.withUnsafeBytes { raw in
                let message = try decoder.decode(raw)
                messages.append(message)
                func strings(_ values: [TupleValue]) -> [String?] {
                    let view = TupleView(values: values, buffer: raw)
                    return values.indices.map { view.string(at: $0) }
                }
                switch message {
                case .insert:
                    newRows[index] = strings(decoder.newTuple)
                    newKinds[index] = decoder.newTuple
                case .update(_, _, let old):
                    newRows[index] = strings(decoder.newTuple)
                    newKinds[index] = decoder.newTuple
                    if old != .none { oldRows[index] = strings(decoder.oldTuple) }
                case .delete:
                    oldRows[index] = strings(decoder.oldTuple)
                case .message(_, _, _, _, let content):
                    messageContents[index] = Array(raw[content])
                default:
                    break
                }
            }
        }
    }

    init(_ name: String) throws {
        var decoder = PgOutputDecoder()
        try self.init(name, decoder: &decoder)
    }
}

@Suite("pgoutput decoder on captured PostgreSQL 15 output")
struct PgOutputDecoderTests {
    @Test func basicCRUD() throws {
        let f = try DecodedFixture("basic_crud")
        #expect(f.messages.count == 27)
        guard case .begin(let finalLSN, _, let xid) = f.messages[0] else { Issue.record("expected Begin"); return }
        #expect(finalLSN == LSN("0/192ADF0"))
        #expect(xid == 728)
        guard case .relation(let items) = f.messages[1] else { Issue.record("expected Relation"); return }
        #expect(items.oid == 16385)
        #expect(items.schema == "public" && items.table == "items")
        #expect(items.replicaIdentity == .default)
        #expect(items.columns.map(\.name) == ["id", "name", "qty"])
        #expect(items.columns.map(\.typeOID) == [23, 25, 23])
        #expect(items.keyColumns == [0])
        #expect(f.newRows[2] == ["1", "apple", "5"])
        #expect(f.newRows[3] == ["2", "banana", "7"])
        guard case .commit(let flags, let commitLSN, let endLSN, _) = f.messages[4] else {
            Issue.record("expected Commit"); return
        }
        #expect(flags == 0 && commitLSN == LSN("0/192ADF0") && endLSN == LSN("0/192AE20"))
        guard case .update(_, _, let noOld) = f.messages[6] else { Issue.record("expected Update"); return }
        #expect(noOld == .none)
        #expect(f.newRows[6] == ["1", "apple", "6"])
        guard case .update(_, _, let keyOld) = f.messages[9] else { Issue.record("expected Update"); return }
        #expect(keyOld == .key)
        #expect(f.oldRows[9] == ["1", nil, nil])
        #expect(f.newRows[9] == ["10", "apple", "6"])
        guard case .delete(_, _, let deleteOld) = f.messages[12] else { Issue.record("expected Delete"); return }
        #expect(deleteOld == .key)
        #expect(f.oldRows[12] == ["2", nil, nil])
        guard case .truncate(_, let one, let cascade1, let restart1) = f.messages[20] else {
            Issue.record("expected Truncate"); return
        }
        #expect(one.map(\.oid) == [16393] && !cascade1 && !restart1)
        guard case .truncate(_, let two, let cascade2, let restart2) = f.messages[25] else {
            Issue.record("expected Truncate"); return
        }
        #expect(two.map(\.oid) == [16385, 16393] && cascade2 && restart2)
    }

    @Test func replicaIdentityFull() throws {
        let f = try DecodedFixture("replica_identity_full")
        guard case .relation(let rel) = f.messages[1] else { Issue.record("expected Relation"); return }
        #expect(rel.replicaIdentity == .full)
        let allFlagged = rel.columns.allSatisfy { $0.isIdentity }
        #expect(allFlagged)
        guard case .update(_, _, let old) = f.messages[7] else { Issue.record("expected Update"); return }
        #expect(old == .full)
        #expect(f.oldRows[7] == ["1", "one", "1"])
        #expect(f.newRows[7] == ["1", "one", "100"])
        #expect(f.oldRows[10] == ["3", nil, "3"])
        guard case .delete(_, _, let deleteOld) = f.messages[13] else { Issue.record("expected Delete"); return }
        #expect(deleteOld == .full)
        #expect(f.oldRows[13] == ["2", "two", "2"])
    }

    @Test func replicaIdentityFullUsesPrimaryKeyWhenKnown() throws {
        var decoder = PgOutputDecoder()
        decoder.relationLookup = { oid, schema, table in
            #expect(oid == 16416 && schema == "public" && table == "rif")
            return .init(primaryKey: ["id"])
        }
        let f = try DecodedFixture("replica_identity_full", decoder: &decoder)
        guard case .relation(let rel) = f.messages[1] else { Issue.record("expected Relation"); return }
        #expect(rel.keyColumns == [0])
    }

    @Test func chunksAreReportedAsTheirHypertable() throws {
        var decoder = PgOutputDecoder()
        decoder.relationLookup = { _, schema, table in
            schema == "public" && table == "items" ? .init(primaryKey: ["id"], reportAs: ("public", "conditions")) : nil
        }
        let f = try DecodedFixture("basic_crud", decoder: &decoder)
        guard case .relation(let rel) = f.messages[1] else { Issue.record("expected Relation"); return }
        #expect(rel.schema == "public" && rel.table == "conditions" && rel.chunk == "public.items")
        #expect(!rel.isSuppressed)
    }

    @Test func replicaIdentityIndex() throws {
        let f = try DecodedFixture("replica_identity_index")
        guard case .relation(let rel) = f.messages[1] else { Issue.record("expected Relation"); return }
        #expect(rel.replicaIdentity == .index)
        #expect(rel.columns.map(\.isIdentity) == [false, true, false])
        #expect(rel.keyColumns == [1])
        #expect(f.oldRows[9] == [nil, "A1", nil])
        #expect(f.newRows[9] == ["1", "A1-new", "5"])
        #expect(f.oldRows[12] == [nil, "B2", nil])
    }

    @Test func typesAndTypeMessages() throws {
        var decoder = PgOutputDecoder()
        let f = try DecodedFixture("types", decoder: &decoder)
        guard case .type(let moodOID, let moodSchema, let moodName) = f.messages[1] else {
            Issue.record("expected Type"); return
        }
        #expect(moodOID == 16436 && moodSchema == "public" && moodName == "mood")
        guard case .type(let domainOID, let domainSchema, let domainName) = f.messages[2] else {
            Issue.record("expected Type"); return
        }
        #expect(domainOID == 16444 && domainSchema == "" && domainName == "int4")
        #expect(decoder.types[16436]?.name == "mood")
        guard case .relation(let rel) = f.messages[3] else { Issue.record("expected Relation"); return }
        #expect(rel.columns.count == 24)
        #expect(rel.columns[9].typeModifier == 14)
        #expect(rel.columns[22].typeOID == 16436)
        let row1 = try #require(f.newRows[4])
        #expect(row1[8] == "tab:\t nl:\n quote:' dquote:\" backslash:\\ ctrl:\u{01} café 😀")
        #expect(row1[20] == "{1,2,3}")
        #expect(row1[21] == #"{a,NULL,"with,comma","with\"quote"}"#)
        let row4 = try #require(f.newRows[13])
        #expect(row4[0] == "4")
        let allNull = row4.dropFirst().allSatisfy { $0 == nil }
        #expect(allNull)
        let allNullKinds = f.newKinds[13]?.dropFirst().allSatisfy { $0 == .null }
        #expect(allNullKinds == true)
    }

    @Test func binaryValuesKeepTheirKind() throws {
        let f = try DecodedFixture("types_binary")
        let kinds = try #require(f.newKinds[4])
        guard case .binary(_, let length) = kinds[0] else { Issue.record("expected a binary value"); return }
        #expect(length == 4)
    }

    @Test func unchangedToast() throws {
        let f = try DecodedFixture("toast_unchanged")
        #expect(f.newRows[2]?[1]?.utf8.count == 12800)
        let kinds = try #require(f.newKinds[5])
        #expect(kinds[1] == .unchangedToast)
        #expect(f.newRows[5]?[2] == "second")
    }

    @Test func relationIsReplacedAfterAlterTable() throws {
        var decoder = PgOutputDecoder()
        let f = try DecodedFixture("alter_table", decoder: &decoder)
        #expect(f.newRows[2] == ["1", "before"])
        #expect(f.newRows[6] == ["2", "after", "extra!"])
        #expect(decoder.relations[16485]?.columns.map(\.name) == ["id", "name", "extra"])
    }

    @Test func logicalMessages() throws {
        let f = try DecodedFixture("logical_message")
        guard case .message(let xid, let transactional, let lsn, let prefix, _) = f.messages[3] else {
            Issue.record("expected Message"); return
        }
        #expect(xid == nil && transactional && lsn == LSN("0/3635F70") && prefix == "pgbridge")
        #expect(f.messageContents[3] == Array("hello".utf8))
        guard case .message(_, let nonTransactional, _, let prefix2, _) = f.messages[5] else {
            Issue.record("expected Message"); return
        }
        #expect(!nonTransactional && prefix2 == "pgbridge-nt")
        #expect(f.messageContents[6] == [0x00, 0xFF, 0x01])
    }

    @Test func streamingMessages() throws {
        let f = try DecodedFixture("streaming")
        #expect(f.messages.count == 1851)
        var starts = 0, stops = 0, commits: [(UInt32, LSN, LSN)] = [], aborts: [(UInt32, UInt32)] = []
        var streamedInsertXids: Set<UInt32> = []
        for message in f.messages {
            switch message {
            case .streamStart: starts += 1
            case .streamStop: stops += 1
            case .streamCommit(let xid, _, let commitLSN, let endLSN, _): commits.append((xid, commitLSN, endLSN))
            case .streamAbort(let xid, let sub, _, _): aborts.append((xid, sub))
            case .insert(let xid, _): if let xid { streamedInsertXids.insert(xid) }
            default: break
            }
        }
        #expect(starts == stops)
        #expect(commits.map(\.0) == [789, 790])
        #expect(commits[0].1 == LSN("0/3A7F5D8") && commits[0].2 == LSN("0/3A7F608"))
        #expect(aborts.map(\.0) == [790, 793] && aborts.map(\.1) == [791, 793])
        #expect(streamedInsertXids.isSuperset(of: [789, 790, 791, 792, 793]))
    }

    @Test func twoPhaseMessages() throws {
        let f = try DecodedFixture("two_phase")
        guard case .beginPrepare(let prepareLSN, let endLSN, _, let xid, let gid) = f.messages[0] else {
            Issue.record("expected Begin Prepare"); return
        }
        #expect(prepareLSN == LSN("0/3EC5508") && endLSN == LSN("0/3EC5600") && xid == 797 && gid == "p1")
        guard case .prepare(_, _, _, _, let xid2, let gid2) = f.messages[3] else {
            Issue.record("expected Prepare"); return
        }
        #expect(xid2 == 797 && gid2 == "p1")
        guard case .commitPrepared(_, let commitLSN, let commitEnd, _, _, let gid3) = f.messages[4] else {
            Issue.record("expected Commit Prepared"); return
        }
        #expect(commitLSN == LSN("0/3EC5600") && commitEnd == LSN("0/3EC5638") && gid3 == "p1")
        guard case .rollbackPrepared(_, let prepareEnd, let rollbackEnd, _, _, let xid4, let gid4) = f.messages[8]
        else { Issue.record("expected Rollback Prepared"); return }
        #expect(prepareEnd == LSN("0/3EC57B0") && rollbackEnd == LSN("0/3EC57E8") && xid4 == 798 && gid4 == "p2")
        #expect(f.newRows[10] == ["3", "plain"])
    }

    @Test func originMessage() throws {
        let f = try DecodedFixture("origin")
        guard case .origin(let lsn, let name) = f.messages[1] else { Issue.record("expected Origin"); return }
        #expect(lsn == LSN("0/AABBCC") && name == "upstream1")
        guard case .begin(_, let commitTime, let xid) = f.messages[0] else { Issue.record("expected Begin"); return }
        #expect(xid == 804)
        var out: [UInt8] = []
        PostgresTime.writeRFC3339(commitTime, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "2024-01-02T03:04:05.678901Z")
    }

    @Test func protocolVersion1() throws {
        let f = try DecodedFixture("proto_v1")
        #expect(f.newRows[2] == ["1", "one"])
        #expect(f.newRows[5] == ["1", "uno"])
        #expect(f.oldRows[8] == ["1", nil])
    }
}
