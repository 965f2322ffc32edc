import BridgeCore
import Synchronization

/// The most recent events a pipe delivered, for the pull API (`/v1/pipes/{name}/events`) and
/// Server-Sent Events (`/v1/pipes/{name}/stream`).
///
/// Bounded by event count and by bytes (events of 1 MiB rows must not hold gigabytes): the
/// oldest batches are dropped first, the newest batch is always kept. Each batch is copied once into
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

    /// Where an event's id, schema, table and op values lie in its batch's bytes.
    struct Keys {
        var id: Range<Int>
        var schema: Range<Int>
        var table: Range<Int>
        var op: Range<Int>
    }

    struct Stored {
        var first: UInt64
        var bytes: [UInt8]
        var ends: [Int]
        /// Per event, scanned once when stored (no per-event allocation).
        var keys: [Keys]
        var bodies: [UInt8]?
        var bodyEnds: [Int]

        var count: Int { ends.count }
        /// What it holds in memory (its bytes, and the formatted bodies when there are any).
        var size: Int { bytes.count + (bodies?.count ?? 0) }
        var end: UInt64 { first + UInt64(ends.count) }

        func body(at index: Int) -> ArraySlice<UInt8> {
            let (bytes, ends) = bodies.map { ($0, bodyEnds) } ?? (self.bytes, self.ends)
            let start = index == 0 ? 0 : ends[index - 1]
            var end = ends[index]
            if end > start, bytes[end - 1] == UInt8(ascii: "\n") { end -= 1 }
            return bytes[start..<end]
        }

        func id(at index: Int) -> String { String(decoding: bytes[keys[index].id], as: UTF8.self) }

        func matches(_ index: Int, table: [UInt8]?, tableHasSchema: Bool, op: [UInt8]?) -> Bool {
            let keys = keys[index]
            if let op, !bytes[keys.op].elementsEqual(op) { return false }
            guard let table else { return true }
            if !tableHasSchema { return bytes[keys.table].elementsEqual(table) }
            let schemaCount = keys.schema.count
            return table.count == schemaCount + 1 + keys.table.count
                && bytes[keys.schema].elementsEqual(table[..<schemaCount]) && table[schemaCount] == UInt8(ascii: ".")
                && bytes[keys.table].elementsEqual(table[(schemaCount + 1)...])
        }
    }

    struct State {
        var batches: [Stored] = []
        var head = 0
        var count = 0
        var bytes = 0
        var nextPosition: UInt64 = 1
        var subscribers: [UInt64: AsyncStream<Void>.Continuation] = [:]
        var nextSubscriber: UInt64 = 0

        var oldest: UInt64 { head < batches.count ? batches[head].first : nextPosition }
    }

    public let capacity: Int
    public let byteCapacity: Int
    private let state = Mutex(State())

    public init(capacity: Int, byteCapacity: Int = .max) {
        precondition(capacity > 0 && byteCapacity > 0)
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// Bytes of the buffered events now.
    public var storedBytes: Int { state.withLock { $0.bytes } }

    /// Adds a delivered group (called by the pipe after its sinks confirmed it).
    public func append(_ group: [EventBatch]) {
        var stored: [Stored] = []
        for batch in group where batch.eventCount > 0 {
            var keys: [Keys] = []
            keys.reserveCapacity(batch.eventCount)
            let empty = 0..<0
            batch.bytes.withUnsafeBufferPointer { bytes in
                for index in batch.eventEnds.indices {
                    let fields = EventFields.scan(bytes, event: batch.eventRange(at: index))
                    keys.append(
                        Keys(
                            id: fields.id ?? empty, schema: fields.schema ?? empty, table: fields.table ?? empty,
                            op: fields.op ?? empty))
                }
            }
            // Exact-size copies: a delivered batch may sit in a much larger buffer.
            stored.append(
                Stored(
                    first: 0, bytes: batch.bytes.withUnsafeBufferPointer { Array($0) },
                    ends: batch.eventEnds.withUnsafeBufferPointer { Array($0) }, keys: keys,
                    bodies: batch.bodies.map { bodies in bodies.bytes.withUnsafeBufferPointer { Array($0) } },
                    bodyEnds: batch.bodies?.ends ?? []))
        }
        guard !stored.isEmpty else { return }
        let subscribers = state.withLock { state -> [AsyncStream<Void>.Continuation] in
            for var batch in stored {
                batch.first = state.nextPosition
                state.nextPosition += UInt64(batch.count)
                state.count += batch.count
                state.bytes += batch.size
                state.batches.append(batch)
            }
            while state.head < state.batches.count - 1,
                state.count - state.batches[state.head].count >= capacity || state.bytes > byteCapacity
            {
                state.count -= state.batches[state.head].count
                state.bytes -= state.batches[state.head].size
                state.batches[state.head] = Stored(
                    first: state.batches[state.head].first, bytes: [], ends: [], keys: [], bodies: nil, bodyEnds: [])
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
                let wanted = Array(id.utf8)
                if let offset = batch.keys.lastIndex(where: { batch.bytes[$0.id].elementsEqual(wanted) }) {
                    return batch.first + UInt64(offset) + 1
                }
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
        state.withLock { state in state.head < state.batches.count ? state.batches[state.head].id(at: 0) : nil }
    }

    /// Up to `limit` events at or after `position` that match `filter`. Throws `gone` when
    /// events at `position` were already dropped.
    /// `position` nil: from the oldest buffered event.
    public func read(from position: UInt64?, limit: Int, filter: Filter = Filter()) throws(ReadError) -> Page {
        let table = filter.table.map { Array($0.utf8) }
        let tableHasSchema = table?.contains(UInt8(ascii: ".")) ?? false
        let op = filter.op.map { Array($0.utf8) }
        let result = state.withLock { state -> Page? in
            let position = position ?? state.oldest
            if position < state.oldest { return nil }
            var events: [Event] = []
            var lastScanned: (batch: Int, offset: Int)?
            var next = max(position, state.oldest)
            var index = state.head
            while index < state.batches.count, state.batches[index].end <= next { index += 1 }
            scan: while index < state.batches.count {
                let batch = state.batches[index]
                for offset in Int(next - batch.first)..<batch.count {
                    next = batch.first + UInt64(offset) + 1
                    lastScanned = (index, offset)
                    guard batch.matches(offset, table: table, tableHasSchema: tableHasSchema, op: op) else { continue }
                    events.append(Event(position: next - 1, id: batch.id(at: offset), body: batch.body(at: offset)))
                    if events.count >= limit { break scan }
                }
                index += 1
            }
            let lastScannedID = lastScanned.map { state.batches[$0.batch].id(at: $0.offset) }
            return Page(events: events, next: next, lastScannedID: lastScannedID)
        }
        guard let result else { throw .gone(oldest: oldestID) }
        return result
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
