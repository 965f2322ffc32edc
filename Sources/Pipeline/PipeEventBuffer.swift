import BridgeCore
import Synchronization

/// The most recent events a pipe delivered, for the pull API (`/v1/pipes/{name}/events`) and
/// Server-Sent Events (`/v1/pipes/{name}/stream`).
///
/// Bounded by event count: the oldest batches are dropped first. Each batch is copied once into
/// exact-size storage (a delivered batch may sit in a much larger buffer). Every event gets a
/// position (1, 2, …); readers page by position, and a cursor that fell out of the buffer is
/// reported as gone rather than silently skipped.
public final class PipeEventBuffer: Sendable {
    /// One event as readers see it.
    public struct Event: Sendable {
        public var position: UInt64
        public var id: String
        /// The event in the pipe's output format, without the trailing newline.
        public var body: ArraySlice<UInt8>
    }

    /// Which events a reader wants; nil = any.
    public struct Filter: Sendable {
        public var table: String?
        public var op: String?

        public init(table: String? = nil, op: String? = nil) {
            self.table = table
            self.op = op
        }
    }

    public struct Page: Sendable {
        public var events: [Event]
        /// The position to continue from.
        public var next: UInt64
        /// The id of the last event looked at (matching the filter or not): the cursor to
        /// continue after, which stays valid as long as the buffer holds newer events.
        public var lastScannedID: String?
    }

    public enum ReadError: Error, Equatable {
        /// The cursor is older than the oldest buffered event (or was never in this pipe).
        case gone(oldest: String?)
    }

    struct Stored {
        var first: UInt64
        var bytes: [UInt8]
        var ends: [Int]
        /// Per event: id, schema.table and op, scanned once when stored.
        var ids: [String]
        var tables: [String]
        var ops: [String]
        var bodies: [UInt8]?
        var bodyEnds: [Int]

        var count: Int { ends.count }
        var end: UInt64 { first + UInt64(ends.count) }

        func body(at index: Int) -> ArraySlice<UInt8> {
            let (bytes, ends) = bodies.map { ($0, bodyEnds) } ?? (self.bytes, self.ends)
            let start = index == 0 ? 0 : ends[index - 1]
            var end = ends[index]
            if end > start, bytes[end - 1] == UInt8(ascii: "\n") { end -= 1 }
            return bytes[start..<end]
        }
    }

    struct State {
        var batches: [Stored] = []
        var head = 0
        var count = 0
        var nextPosition: UInt64 = 1
        var subscribers: [UInt64: AsyncStream<Void>.Continuation] = [:]
        var nextSubscriber: UInt64 = 0

        var oldest: UInt64 { head < batches.count ? batches[head].first : nextPosition }
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Adds a delivered group (called by the pipe after its sinks confirmed it).
    public func append(_ group: [EventBatch]) {
        var stored: [Stored] = []
        for batch in group where batch.eventCount > 0 {
            var ids: [String] = []
            var tables: [String] = []
            var ops: [String] = []
            ids.reserveCapacity(batch.eventCount)
            batch.forEachEvent { bytes, _, fields, _ in
                func text(_ range: Range<Int>?) -> String {
                    guard let range else { return "" }
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                }
                ids.append(text(fields.id))
                tables.append("\(text(fields.schema)).\(text(fields.table))")
                ops.append(text(fields.op))
            }
            stored.append(
                Stored(
                    first: 0, bytes: Array(batch.bytes), ends: batch.eventEnds, ids: ids, tables: tables, ops: ops,
                    bodies: batch.bodies.map { Array($0.bytes) }, bodyEnds: batch.bodies?.ends ?? []))
        }
        guard !stored.isEmpty else { return }
        let subscribers = state.withLock { state -> [AsyncStream<Void>.Continuation] in
            for var batch in stored {
                batch.first = state.nextPosition
                state.nextPosition += UInt64(batch.count)
                state.count += batch.count
                state.batches.append(batch)
            }
            while state.count - state.batches[state.head].count >= capacity {
                state.count -= state.batches[state.head].count
                state.head += 1
            }
            if state.head > 64, state.head * 2 > state.batches.count {
                state.batches.removeFirst(state.head)
                state.head = 0
            }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.yield() }
    }

    /// The position just after the event with `id`; `gone` when it is not buffered (any more).
    public func position(after id: String) throws(ReadError) -> UInt64 {
        let found = state.withLock { state -> UInt64? in
            for index in stride(from: state.batches.count - 1, through: state.head, by: -1) {
                let batch = state.batches[index]
                if let offset = batch.ids.lastIndex(of: id) { return batch.first + UInt64(offset) + 1 }
            }
            return nil
        }
        guard let found else { throw .gone(oldest: oldestID) }
        return found
    }

    /// The position the next appended event will get (a live reader starts here).
    public var endPosition: UInt64 { state.withLock { $0.nextPosition } }

    /// The position of the oldest buffered event.
    public var startPosition: UInt64 { state.withLock { $0.oldest } }

    var oldestID: String? {
        state.withLock { state in state.head < state.batches.count ? state.batches[state.head].ids.first : nil }
    }

    /// Up to `limit` events at or after `position` that match `filter`. Throws `gone` when
    /// events at `position` were already dropped.
    /// `position` nil: from the oldest buffered event.
    public func read(from position: UInt64?, limit: Int, filter: Filter = Filter()) throws(ReadError) -> Page {
        let result = state.withLock { state -> Page? in
            let position = position ?? state.oldest
            if position < state.oldest { return nil }
            var events: [Event] = []
            var lastScannedID: String?
            var next = max(position, state.oldest)
            var index = state.head
            while index < state.batches.count, state.batches[index].end <= next { index += 1 }
            scan: while index < state.batches.count {
                let batch = state.batches[index]
                for offset in Int(next - batch.first)..<batch.count {
                    next = batch.first + UInt64(offset) + 1
                    lastScannedID = batch.ids[offset]
                    if let table = filter.table, !Self.tableMatches(filter: table, qualified: batch.tables[offset]) {
                        continue
                    }
                    if let op = filter.op, batch.ops[offset] != op { continue }
                    events.append(
                        Event(position: next - 1, id: batch.ids[offset], body: batch.body(at: offset)))
                    if events.count >= limit { break scan }
                }
                index += 1
            }
            return Page(events: events, next: next, lastScannedID: lastScannedID)
        }
        guard let result else { throw .gone(oldest: oldestID) }
        return result
    }

    /// `table` matches `schema.table` exactly, or the table name alone when it has no schema.
    static func tableMatches(filter table: String, qualified: String) -> Bool {
        if table == qualified { return true }
        guard !table.contains("."), let dot = qualified.firstIndex(of: ".") else { return false }
        return qualified[qualified.index(after: dot)...] == table
    }

    /// Wake-ups after each append, until the stream is dropped.
    public func changes() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let key = state.withLock { state in
            let key = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[key] = continuation
            return key
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) }
        }
        return stream
    }

    /// Ends every subscriber's stream (the pipe was dropped).
    public func close() {
        let subscribers = state.withLock { state in
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
