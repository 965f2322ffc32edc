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
    /// Per event, the `route` processor that matched it (1-based index among the pipe's routes;
    /// 0 = none). nil when the pipe has no routes.
    public var routes: [UInt8]?
    /// The events in the pipe's output format (Debezium, CloudEvents), laid out like `bytes`;
    /// nil when that is the native format. Sinks read keys, topics and ids from the native
    /// event in `bytes` and send the body.
    public var bodies: Bodies?
    /// Messages the source could not turn into events (not JSON, no key): they go to the pipe's
    /// dead-letter target before the batch is delivered, and are acknowledged with it.
    public var refused: [RefusedMessage] = []

    public struct Bodies: Sendable {
        public var bytes: [UInt8] = []
        public var ends: [Int] = []

        public init() {}

        @inline(__always)
        public func range(at index: Int) -> Range<Int> {
            (index == 0 ? 0 : ends[index - 1])..<(ends[index] - 1)
        }
    }

    public init(bytes: [UInt8] = [], eventEnds: [Int] = [], checkpoint: LSN? = nil, sequence: UInt64 = 0) {
        self.bytes = bytes
        self.eventEnds = eventEnds
        self.checkpoint = checkpoint
        self.sequence = sequence
    }

    public var eventCount: Int { eventEnds.count }
    public var isEmpty: Bool { eventEnds.isEmpty && checkpoint == nil && refused.isEmpty }

    /// The bytes of event `index` without its trailing newline.
    public func event(at index: Int) -> ArraySlice<UInt8> {
        let start = index == 0 ? 0 : eventEnds[index - 1]
        return bytes[start..<(eventEnds[index] - 1)]
    }

    /// The range of event `index` in `bytes`, without its trailing newline.
    @inline(__always)
    public func eventRange(at index: Int) -> Range<Int> {
        (index == 0 ? 0 : eventEnds[index - 1])..<(eventEnds[index] - 1)
    }

    /// What a sink sends for event `index`: its body in the output format, else the event.
    public func body(at index: Int) -> ArraySlice<UInt8> {
        guard let bodies else { return event(at: index) }
        return bodies.bytes[bodies.range(at: index)]
    }

    /// Appends a copy of event `index` of another batch, with its route and body.
    public mutating func appendEvent(from other: EventBatch, at index: Int) {
        if let otherBodies = other.bodies {
            if bodies == nil {
                var own = Bodies()
                for i in eventEnds.indices {
                    own.bytes.append(contentsOf: event(at: i))
                    own.bytes.append(UInt8(ascii: "\n"))
                    own.ends.append(own.bytes.count)
                }
                bodies = own
            }
            bodies!.bytes.append(contentsOf: otherBodies.bytes[otherBodies.range(at: index)])
            bodies!.bytes.append(UInt8(ascii: "\n"))
            bodies!.ends.append(bodies!.bytes.count)
        } else if bodies != nil {
            bodies!.bytes.append(contentsOf: other.event(at: index))
            bodies!.bytes.append(UInt8(ascii: "\n"))
            bodies!.ends.append(bodies!.bytes.count)
        }
        appendEvent(other.event(at: index), route: other.route(at: index))
    }

    /// Appends a copy of an event (no body: native format).
    public mutating func appendEvent(_ event: ArraySlice<UInt8>, route: UInt8 = 0) {
        bytes.append(contentsOf: event)
        endEvent()
        if route != 0 || routes != nil {
            if routes == nil { routes = [UInt8](repeating: 0, count: eventEnds.count - 1) }
            routes!.append(route)
        }
    }

    /// The route of event `index` (0 = none).
    @inline(__always)
    public func route(at index: Int) -> UInt8 {
        routes.map { $0[index] } ?? 0
    }

    /// Calls `visit` with the bytes of the batch, the index and native fields of each event, and
    /// the bytes to send for it (its body in the output format, else the event itself).
    public func forEachEvent(
        _ visit: (UnsafeBufferPointer<UInt8>, Int, EventFields, UnsafeBufferPointer<UInt8>) throws -> Void
    ) rethrows {
        try bytes.withUnsafeBufferPointer { buffer in
            if let bodies {
                try bodies.bytes.withUnsafeBufferPointer { bodyBuffer in
                    for index in eventEnds.indices {
                        try visit(
                            buffer, index, EventFields.scan(buffer, event: eventRange(at: index)),
                            UnsafeBufferPointer(rebasing: bodyBuffer[bodies.range(at: index)]))
                    }
                }
            } else {
                for index in eventEnds.indices {
                    let range = eventRange(at: index)
                    try visit(
                        buffer, index, EventFields.scan(buffer, event: range),
                        UnsafeBufferPointer(rebasing: buffer[range]))
                }
            }
        }
    }

    /// Closes the event just written at the end of `bytes`.
    @inline(__always)
    public mutating func endEvent() {
        bytes.append(UInt8(ascii: "\n"))
        eventEnds.append(bytes.count)
    }
}

/// A message a source refused: why, and the message as a JSON object (its metadata and its
/// bytes: `payload` when UTF-8 text, else `payload_base64`).
public struct RefusedMessage: Sendable, Equatable {
    public var reason: String
    public var record: [UInt8]

    public init(reason: String, record: [UInt8]) {
        self.reason = reason
        self.record = record
    }
}

/// Something that receives batches and acknowledges them once the remote side has them durably.
public protocol EventSink: Sendable {
    /// Shown in logs and metrics, e.g. `file:/var/lib/events.jsonl`. Never holds secrets.
    var description: String { get }
    /// Opens files or connections; throws when the sink cannot be reached.
    func open() async throws
    /// Returns once every event of `batches` is durably stored or was rejected by the remote
    /// side (listed in the result). Throws when the sink is unavailable: then none of the
    /// events count as delivered and the whole delivery is tried again.
    func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult
    func close() async
}

/// What the remote side refused in one delivery; everything else was confirmed.
public struct DeliveryResult: Sendable {
    public var rejected: [Rejection]

    public init(rejected: [Rejection] = []) { self.rejected = rejected }

    public static var delivered: DeliveryResult { DeliveryResult() }
}

/// One event the remote side refused.
public struct Rejection: Sendable, Equatable {
    /// Position of the event in the delivered batches.
    public var batch: Int
    public var event: Int
    /// What the remote side said (never a secret).
    public var reason: String
    /// Sending it again cannot succeed (HTTP 400, a message too large): it goes to the
    /// dead-letter target without retries.
    public var isPermanent: Bool
    /// How long the remote side asked to wait before trying again (HTTP `Retry-After`).
    public var retryAfter: Duration?

    public init(batch: Int, event: Int, reason: String, isPermanent: Bool, retryAfter: Duration? = nil) {
        self.batch = batch
        self.event = event
        self.reason = reason
        self.isPermanent = isPermanent
        self.retryAfter = retryAfter
    }
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
