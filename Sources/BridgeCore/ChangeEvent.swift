/// The kind of change an event reports (`op` in every format).
public enum ChangeOperation: Sendable, Equatable {
    case insert, update, delete, truncate, read, message, chunkDropped

    public var name: StaticString {
        switch self {
        case .insert: "insert"
        case .update: "update"
        case .delete: "delete"
        case .truncate: "truncate"
        case .read: "read"
        case .message: "message"
        case .chunkDropped: "chunk_dropped"
        }
    }
}

/// How an event was captured (`source.capture`).
public enum CaptureKind: Sendable {
    case replication, outbox, notify, snapshot

    public var name: StaticString {
        switch self {
        case .replication: "replication"
        case .outbox: "outbox"
        case .notify: "notify"
        case .snapshot: "snapshot"
        }
    }
}

/// One column value of a decoded row, as offsets into the message buffer it came from.
public enum TupleValue: Sendable, Equatable {
    case null
    /// An unchanged TOASTed value that the source did not send.
    case unchangedToast
    case text(offset: Int32, length: Int32)
    case binary(offset: Int32, length: Int32)
}

/// A decoded row: values plus the buffer they point into. Valid only while that buffer lives.
public struct TupleView {
    public var values: [TupleValue]
    public var buffer: UnsafeRawBufferPointer

    public init(values: [TupleValue], buffer: UnsafeRawBufferPointer) {
        self.values = values
        self.buffer = buffer
    }

    /// The bytes of a text or binary value.
    @inline(__always)
    public func bytes(offset: Int32, length: Int32) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[Int(offset)..<Int(offset + length)])
    }

    /// The value of column `index` as a Swift string (tests and diagnostics; not the hot path).
    public func string(at index: Int) -> String? {
        guard index < values.count else { return nil }
        switch values[index] {
        case .text(let offset, let length), .binary(let offset, let length):
            return String(decoding: bytes(offset: offset, length: length), as: UTF8.self)
        case .null, .unchangedToast:
            return nil
        }
    }
}

/// The transaction an event belongs to.
public struct TransactionContext: Sendable {
    /// Commit record LSN (the `commit_lsn` of every event and the first half of its `id`).
    public var commitLSN: LSN
    public var xid: UInt32
    /// Commit time in PostgreSQL microseconds (since 2000-01-01 UTC).
    public var commitTime: Int64
    public var capture: CaptureKind

    public init(commitLSN: LSN, xid: UInt32, commitTime: Int64, capture: CaptureKind) {
        self.commitLSN = commitLSN
        self.xid = xid
        self.commitTime = commitTime
        self.capture = capture
    }
}

/// One row change as a transient view: encoders turn it into bytes without copying the row.
public struct RowChange {
    public var op: ChangeOperation
    public var relation: RelationInfo
    /// WAL position of the change itself (when known; else the commit LSN).
    public var lsn: LSN
    /// Position of the event within its transaction (second half of the `id`).
    public var ordinal: Int
    public var old: TupleView?
    /// `old` holds only the replica-identity key (DEFAULT/INDEX identity), not the whole row.
    public var oldIsKeyOnly: Bool
    public var new: TupleView?

    public init(
        op: ChangeOperation, relation: RelationInfo, lsn: LSN, ordinal: Int,
        old: TupleView? = nil, oldIsKeyOnly: Bool = false, new: TupleView? = nil
    ) {
        self.op = op
        self.relation = relation
        self.lsn = lsn
        self.ordinal = ordinal
        self.old = old
        self.oldIsKeyOnly = oldIsKeyOnly
        self.new = new
    }
}
