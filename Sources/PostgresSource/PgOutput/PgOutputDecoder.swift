import BridgeCore

/// Decodes pgoutput messages, keeping the relation cache and stream state between them.
///
/// Not thread-safe: one decoder belongs to one replication stream.
public struct PgOutputDecoder {
    /// Relations by OID, replaced on every Relation message (ALTER TABLE, new chunks). At most
    /// `maxRelations`: beyond, the relation announced longest ago is evicted (TimescaleDB makes
    /// a relation per chunk, forever). A change for an evicted relation throws
    /// `unknownRelation` with `evictions > 0`; the stream then reconnects, and the server
    /// announces every relation again on the new connection.
    public private(set) var relations: [UInt32: RelationInfo] = [:]
    public var maxRelations = 4_096
    /// Relations evicted so far (see `relations`).
    public private(set) var evictions = 0
    /// OIDs in the order they were (last) announced, with the announcement number; entries
    /// whose number is not the relation's current one are stale.
    private var announced: [(oid: UInt32, number: UInt64)] = []
    private var announcedHead = 0
    private var announcement: [UInt32: UInt64] = [:]
    private var announcements: UInt64 = 0
    /// Non-built-in types announced by Type messages: OID → (schema, name).
    public private(set) var types: [UInt32: (schema: String, name: String)] = [:]
    /// Between Stream Start and Stream Stop, change messages carry the (sub)transaction xid.
    public private(set) var inStream = false

    /// The row image of the last insert/update (new) and update/delete (old), pointing into the
    /// buffer passed to `decode`.
    public private(set) var newTuple: [TupleValue] = []
    public private(set) var oldTuple: [TupleValue] = []

    /// What the catalog says about a relation beyond its Relation message.
    public struct RelationMetadata: Sendable, Equatable {
        /// Primary-key columns (used for the event key under REPLICA IDENTITY FULL).
        public var primaryKey: [String]?
        /// For a TimescaleDB chunk: the hypertable (or continuous-aggregate view) to report.
        public var reportAs: (schema: String, table: String)?
        public var isSuppressed: Bool
        /// One of TimescaleDB's catalog tables read from the stream.
        public var timescaleCatalog: TimescaleCatalogTable?
        /// The inheritance parent (a hypertable for chunks, a partitioned table for partitions).
        public var parent: (schema: String, table: String)?

        public init(
            primaryKey: [String]? = nil, reportAs: (schema: String, table: String)? = nil, isSuppressed: Bool = false,
            timescaleCatalog: TimescaleCatalogTable? = nil
        ) {
            self.primaryKey = primaryKey
            self.reportAs = reportAs
            self.isSuppressed = isSuppressed
            self.timescaleCatalog = timescaleCatalog
        }

        public static func == (a: Self, b: Self) -> Bool {
            a.primaryKey == b.primaryKey && a.reportAs?.schema == b.reportAs?.schema
                && a.reportAs?.table == b.reportAs?.table && a.isSuppressed == b.isSuppressed
                && a.timescaleCatalog == b.timescaleCatalog
        }
    }

    /// Looks up catalog metadata for a relation (OID, namespace, name) on every Relation
    /// message; optional (without it, relations are reported under their own names).
    public var relationLookup: ((UInt32, String, String) throws -> RelationMetadata?)?

    public init() {
        newTuple.reserveCapacity(32)
        oldTuple.reserveCapacity(32)
    }

    /// Forgets per-connection stream state (after a reconnect). The relation cache stays: the
    /// server re-sends Relation messages before using them on a new connection.
    public mutating func resetStream() {
        inStream = false
    }

    /// Decodes one message. `buffer` must outlive any use of `newTuple`/`oldTuple` and of the
    /// message's byte ranges.
    public mutating func decode(_ buffer: UnsafeRawBufferPointer) throws -> PgOutputMessage {
        var r = ByteReader(buffer)
        let type = try r.uint8("message type")
        switch type {
        case UInt8(ascii: "B"):
            let finalLSN = try r.lsn()
            let time = try r.int64("commit time")
            let xid = try r.uint32("xid")
            return .begin(finalLSN: finalLSN, commitTime: time, xid: xid)
        case UInt8(ascii: "C"):
            let flags = try r.uint8("flags")
            let commitLSN = try r.lsn()
            let endLSN = try r.lsn()
            let time = try r.int64("commit time")
            return .commit(flags: flags, commitLSN: commitLSN, endLSN: endLSN, commitTime: time)
        case UInt8(ascii: "O"):
            let lsn = try r.lsn()
            let name = try r.cString("origin name")
            return .origin(commitLSN: lsn, name: name)
        case UInt8(ascii: "R"):
            _ = try streamXid(&r)
            return .relation(try decodeRelation(&r))
        case UInt8(ascii: "Y"):
            _ = try streamXid(&r)
            let oid = try r.uint32("type OID")
            let schema = try r.cString("type namespace")
            let name = try r.cString("type name")
            types[oid] = (schema, name)
            return .type(oid: oid, schema: schema, name: name)
        case UInt8(ascii: "I"):
            let xid = try streamXid(&r)
            let relation = try relation(try r.uint32("relation OID"))
            let marker = try r.uint8("tuple marker")
            guard marker == UInt8(ascii: "N") else {
                throw PgOutputError.invalidTupleKind(marker, offset: r.position - 1)
            }
            try decodeTuple(&r, into: &newTuple, relation: relation)
            return .insert(xid: xid, relation: relation)
        case UInt8(ascii: "U"):
            let xid = try streamXid(&r)
            let relation = try relation(try r.uint32("relation OID"))
            var marker = try r.uint8("tuple marker")
            var old = PgOutputMessage.OldTuple.none
            if marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") {
                old = marker == UInt8(ascii: "K") ? .key : .full
                try decodeTuple(&r, into: &oldTuple, relation: relation)
                marker = try r.uint8("tuple marker")
            }
            guard marker == UInt8(ascii: "N") else {
                throw PgOutputError.invalidTupleKind(marker, offset: r.position - 1)
            }
            try decodeTuple(&r, into: &newTuple, relation: relation)
            return .update(xid: xid, relation: relation, old: old)
        case UInt8(ascii: "D"):
            let xid = try streamXid(&r)
            let relation = try relation(try r.uint32("relation OID"))
            let marker = try r.uint8("tuple marker")
            guard marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") else {
                throw PgOutputError.invalidTupleKind(marker, offset: r.position - 1)
            }
            try decodeTuple(&r, into: &oldTuple, relation: relation)
            return .delete(xid: xid, relation: relation, old: marker == UInt8(ascii: "K") ? .key : .full)
        case UInt8(ascii: "T"):
            let xid = try streamXid(&r)
            let count = Int(try r.uint32("relation count"))
            let options = try r.uint8("truncate options")
            try r.need(count * 4, "relation OIDs")
            var truncated: [RelationInfo] = []
            truncated.reserveCapacity(count)
            for _ in 0..<count { truncated.append(try relation(try r.uint32("relation OID"))) }
            return .truncate(
                xid: xid, relations: truncated, cascade: options & 1 != 0, restartIdentity: options & 2 != 0)
        case UInt8(ascii: "M"):
            let xid = try streamXid(&r)
            let flags = try r.uint8("flags")
            let lsn = try r.lsn()
            let prefix = try r.cString("prefix")
            let length = Int(try r.uint32("content length"))
            try r.need(length, "message content")
            let start = r.position
            return .message(
                xid: xid, transactional: flags & 1 != 0, lsn: lsn, prefix: prefix, content: start..<(start + length))
        case UInt8(ascii: "S"):
            let xid = try r.uint32("xid")
            let first = try r.uint8("first segment")
            inStream = true
            return .streamStart(xid: xid, firstSegment: first == 1)
        case UInt8(ascii: "E"):
            inStream = false
            return .streamStop
        case UInt8(ascii: "c"):
            let xid = try r.uint32("xid")
            let flags = try r.uint8("flags")
            let commitLSN = try r.lsn()
            let endLSN = try r.lsn()
            let time = try r.int64("commit time")
            return .streamCommit(xid: xid, flags: flags, commitLSN: commitLSN, endLSN: endLSN, commitTime: time)
        case UInt8(ascii: "A"):
            let xid = try r.uint32("xid")
            let subxid = try r.uint32("subtransaction xid")
            var abortLSN: LSN?
            var abortTime: Int64?
            if r.remaining >= 16 {  // protocol 4 with parallel streaming
                abortLSN = try r.lsn()
                abortTime = try r.int64("abort time")
            }
            return .streamAbort(xid: xid, subtransactionXid: subxid, abortLSN: abortLSN, abortTime: abortTime)
        case UInt8(ascii: "b"):
            let prepareLSN = try r.lsn()
            let endLSN = try r.lsn()
            let time = try r.int64("prepare time")
            let xid = try r.uint32("xid")
            let gid = try r.cString("gid")
            return .beginPrepare(prepareLSN: prepareLSN, endLSN: endLSN, prepareTime: time, xid: xid, gid: gid)
        case UInt8(ascii: "P"), UInt8(ascii: "p"):
            let flags = try r.uint8("flags")
            let prepareLSN = try r.lsn()
            let endLSN = try r.lsn()
            let time = try r.int64("prepare time")
            let xid = try r.uint32("xid")
            let gid = try r.cString("gid")
            if type == UInt8(ascii: "P") {
                return .prepare(
                    flags: flags, prepareLSN: prepareLSN, endLSN: endLSN, prepareTime: time, xid: xid, gid: gid)
            }
            return .streamPrepare(
                flags: flags, prepareLSN: prepareLSN, endLSN: endLSN, prepareTime: time, xid: xid, gid: gid)
        case UInt8(ascii: "K"):
            let flags = try r.uint8("flags")
            let commitLSN = try r.lsn()
            let endLSN = try r.lsn()
            let time = try r.int64("commit time")
            let xid = try r.uint32("xid")
            let gid = try r.cString("gid")
            return .commitPrepared(
                flags: flags, commitLSN: commitLSN, endLSN: endLSN, commitTime: time, xid: xid, gid: gid)
        case UInt8(ascii: "r"):
            let flags = try r.uint8("flags")
            let prepareEnd = try r.lsn()
            let rollbackEnd = try r.lsn()
            let prepareTime = try r.int64("prepare time")
            let rollbackTime = try r.int64("rollback time")
            let xid = try r.uint32("xid")
            let gid = try r.cString("gid")
            return .rollbackPrepared(
                flags: flags, prepareEndLSN: prepareEnd, rollbackEndLSN: rollbackEnd, prepareTime: prepareTime,
                rollbackTime: rollbackTime, xid: xid, gid: gid)
        default:
            throw PgOutputError.unknownMessageType(type)
        }
    }

    /// Decodes a message the way it was received inside a stream (`[xid]` present), e.g. when
    /// replaying a spilled streamed transaction.
    public mutating func decodeStreamed(_ buffer: UnsafeRawBufferPointer) throws -> PgOutputMessage {
        let saved = inStream
        inStream = true
        defer { inStream = saved }
        return try decode(buffer)
    }

    @inline(__always)
    private func streamXid(_ r: inout ByteReader) throws -> UInt32? {
        inStream ? try r.uint32("xid") : nil
    }

    @inline(__always)
    private func relation(_ oid: UInt32) throws -> RelationInfo {
        guard let relation = relations[oid] else { throw PgOutputError.unknownRelation(oid) }
        return relation
    }

    private mutating func decodeRelation(_ r: inout ByteReader) throws -> RelationInfo {
        let oid = try r.uint32("relation OID")
        var schema = try r.cString("namespace")
        if schema.isEmpty { schema = "pg_catalog" }
        let name = try r.cString("relation name")
        let identityByte = try r.uint8("replica identity")
        guard let identity = RelationInfo.ReplicaIdentity(rawValue: identityByte) else {
            throw PgOutputError.invalidValue(
                "replica identity 0x\(String(identityByte, radix: 16)) for \(schema).\(name)")
        }
        let count = Int(try r.uint16("column count"))
        var columns: [RelationInfo.Column] = []
        columns.reserveCapacity(count)
        for _ in 0..<count {
            let flags = try r.uint8("column flags")
            let columnName = try r.cString("column name")
            let typeOID = try r.uint32("column type")
            let modifier = try r.int32("type modifier")
            columns.append(
                .init(name: columnName, typeOID: typeOID, typeModifier: modifier, isIdentity: flags & 1 != 0))
        }
        let metadata = try relationLookup?(oid, schema, name)
        let info: RelationInfo
        if let reportAs = metadata?.reportAs {
            info = RelationInfo(
                oid: oid, schema: reportAs.schema, table: reportAs.table, replicaIdentity: identity, columns: columns,
                primaryKey: metadata?.primaryKey, chunk: "\(schema).\(name)",
                isSuppressed: metadata?.isSuppressed ?? false)
        } else {
            info = RelationInfo(
                oid: oid, schema: schema, table: name, replicaIdentity: identity, columns: columns,
                primaryKey: metadata?.primaryKey, isSuppressed: metadata?.isSuppressed ?? false,
                timescaleCatalog: metadata?.timescaleCatalog)
        }
        remember(info)
        return info
    }

    private mutating func remember(_ info: RelationInfo) {
        announcements += 1
        relations[info.oid] = info
        announcement[info.oid] = announcements
        announced.append((info.oid, announcements))
        while relations.count > maxRelations, announcedHead < announced.count {
            let oldest = announced[announcedHead]
            announcedHead += 1
            guard announcement[oldest.oid] == oldest.number else { continue }  // announced again since
            relations[oldest.oid] = nil
            announcement[oldest.oid] = nil
            evictions += 1
        }
        if announcedHead > 1_024 && announcedHead * 2 > announced.count {
            announced.removeFirst(announcedHead)
            announcedHead = 0
        }
    }

    /// Forgets relations that cannot send changes any more (a dropped TimescaleDB chunk),
    /// by the chunk name they were reported with (`schema.name`).
    public mutating func forgetChunk(_ qualifiedName: String) {
        for (oid, info) in relations where info.chunk == qualifiedName {
            relations[oid] = nil
            announcement[oid] = nil
            evictions += 1
        }
    }

    /// TupleData: Int16 count, then per column a kind byte and, for 't'/'b', Int32 length + bytes.
    @inline(__always)
    private func decodeTuple(_ r: inout ByteReader, into values: inout [TupleValue], relation: RelationInfo) throws {
        let count = Int(try r.uint16("tuple column count"))
        guard count <= relation.columns.count else {
            throw PgOutputError.columnCountMismatch(
                relation: relation.qualifiedName, expected: relation.columns.count, got: count)
        }
        values.removeAll(keepingCapacity: true)
        for _ in 0..<count {
            let kind = try r.uint8("column kind")
            switch kind {
            case UInt8(ascii: "n"):
                values.append(.null)
            case UInt8(ascii: "u"):
                values.append(.unchangedToast)
            case UInt8(ascii: "t"), UInt8(ascii: "b"):
                let length = try r.int32("value length")
                try r.need(Int(length), "column value")
                let offset = Int32(r.position)
                r.position += Int(length)
                values.append(
                    kind == UInt8(ascii: "t")
                        ? .text(offset: offset, length: length) : .binary(offset: offset, length: length))
            default:
                throw PgOutputError.invalidTupleKind(kind, offset: r.position - 1)
            }
        }
    }
}
