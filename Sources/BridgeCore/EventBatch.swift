/// A run of encoded events handed from a source to the sinks in one piece.
///
/// `bytes` holds the events back to back, each followed by `\n` (so a JSONL sink writes the
/// buffer as is); `eventEnds[i]` is the offset just past event `i`'s newline. `checkpoint` is the
/// commit end LSN of the newest transaction whose events all lie in this batch or earlier ones:
/// once every sink has acknowledged the batch, that position may be confirmed to the source.
public struct EventBatch: Sendable {
    public var bytes: [UInt8]
    public var eventEnds: [Int]
    public var checkpoint: LSN?
    /// Source-assigned, increasing by one per batch.
    public var sequence: UInt64

    public init(bytes: [UInt8] = [], eventEnds: [Int] = [], checkpoint: LSN? = nil, sequence: UInt64 = 0) {
        self.bytes = bytes
        self.eventEnds = eventEnds
        self.checkpoint = checkpoint
        self.sequence = sequence
    }

    public var eventCount: Int { eventEnds.count }
    public var isEmpty: Bool { eventEnds.isEmpty && checkpoint == nil }

    /// The bytes of event `index` without its trailing newline.
    public func event(at index: Int) -> ArraySlice<UInt8> {
        let start = index == 0 ? 0 : eventEnds[index - 1]
        return bytes[start..<(eventEnds[index] - 1)]
    }

    /// Closes the event just written at the end of `bytes`.
    @inline(__always)
    public mutating func endEvent() {
        bytes.append(UInt8(ascii: "\n"))
        eventEnds.append(bytes.count)
    }
}

/// Something that receives batches and acknowledges them once the remote side has them durably.
public protocol EventSink: Sendable {
    /// Shown in logs and metrics, e.g. `file:/var/lib/events.jsonl`.
    var description: String { get }
    /// Opens files or connections; throws when the sink cannot be reached.
    func open() async throws
    /// Returns once every event of `batches` is durably stored (the acknowledgement).
    func deliver(_ batches: [EventBatch]) async throws
    func close() async
}

/// A change source feeding a pipe: batches out, acknowledgements back.
public protocol ChangeSource: Sendable {
    /// Connects, prepares (publication, slot) and starts capturing.
    func start() async throws
    /// The next batch; nil once the source has stopped and everything was handed out.
    func next() async throws -> EventBatch?
    /// Batches already waiting, without suspending (used to group deliveries).
    func nextIfReady() -> EventBatch?
    /// Every batch up to and including `sequence` was delivered by every sink; `checkpoint` is
    /// the newest checkpoint among them.
    func acknowledge(through sequence: UInt64, checkpoint: LSN?)
    /// Stops capturing; `next()` returns the remaining batches, then nil.
    func requestStop()
    /// Sends the final acknowledgement and disconnects.
    func finish() async
}
