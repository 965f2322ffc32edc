import BridgeCore

/// One decoded pgoutput message (protocol versions 1 to 4).
///
/// Row images are not part of the enum: the decoder keeps them in its reusable `newTuple` /
/// `oldTuple` storage, so decoding a change allocates nothing.
public enum PgOutputMessage: Sendable {
    public enum OldTuple: Sendable, Equatable {
        /// No old image (insert; update of a DEFAULT-identity row whose key did not change).
        case none
        /// `'K'`: only the replica-identity columns are meaningful.
        case key
        /// `'O'`: the whole old row (REPLICA IDENTITY FULL).
        case full
    }

    case begin(finalLSN: LSN, commitTime: Int64, xid: UInt32)
    case commit(flags: UInt8, commitLSN: LSN, endLSN: LSN, commitTime: Int64)
    case origin(commitLSN: LSN, name: String)
    case relation(RelationInfo)
    case type(oid: UInt32, schema: String, name: String)
    case insert(xid: UInt32?, relation: RelationInfo)
    case update(xid: UInt32?, relation: RelationInfo, old: OldTuple)
    case delete(xid: UInt32?, relation: RelationInfo, old: OldTuple)
    case truncate(xid: UInt32?, relations: [RelationInfo], cascade: Bool, restartIdentity: Bool)
    /// `content` is the byte range of the payload within the decoded buffer.
    case message(xid: UInt32?, transactional: Bool, lsn: LSN, prefix: String, content: Range<Int>)
    case streamStart(xid: UInt32, firstSegment: Bool)
    case streamStop
    case streamCommit(xid: UInt32, flags: UInt8, commitLSN: LSN, endLSN: LSN, commitTime: Int64)
    case streamAbort(xid: UInt32, subtransactionXid: UInt32, abortLSN: LSN?, abortTime: Int64?)
    case beginPrepare(prepareLSN: LSN, endLSN: LSN, prepareTime: Int64, xid: UInt32, gid: String)
    case prepare(flags: UInt8, prepareLSN: LSN, endLSN: LSN, prepareTime: Int64, xid: UInt32, gid: String)
    case commitPrepared(flags: UInt8, commitLSN: LSN, endLSN: LSN, commitTime: Int64, xid: UInt32, gid: String)
    case rollbackPrepared(
        flags: UInt8, prepareEndLSN: LSN, rollbackEndLSN: LSN, prepareTime: Int64, rollbackTime: Int64,
        xid: UInt32, gid: String)
    case streamPrepare(flags: UInt8, prepareLSN: LSN, endLSN: LSN, prepareTime: Int64, xid: UInt32, gid: String)
}
