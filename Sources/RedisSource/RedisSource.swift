import BridgeCore
import Foundation
import Logging
import RedisClient

/// Reads streams through a consumer group as change events (`kind: redis`). Entries are
/// acknowledged (`XACK`) only once every sink confirmed their batch (at least once); what a
/// crashed consumer left pending is read again by this consumer on restart, or claimed
/// (`XAUTOCLAIM`) from another consumer after `claim_after`.
public final class RedisSource: ThreadedChangeSource, CountsMessages {
    let settings: RedisSourceConfig
    let source: MessageSourceConfig
    let pipe: String
    let logger: Logger
    let writer: MessageEventWriter
    /// Per stream: the start of its events' source block and its name escaped for JSON.
    let streams: [String: (sourceHead: [UInt8], escapedName: [UInt8])]
    /// The field holding the message (nil: the entry's fields as one JSON object).
    let field: String?
    public let thread = SourceThread(name: "pgbridge-redis")
    public let counters: MessageSourceCounters

    /// The reading thread's state, kept across reconnects (acknowledgements are by entry id:
    /// they hold on any connection).
    struct Progress {
        var sequence: UInt64 = 0
        var unconfirmed: [(sequence: UInt64, entries: [String: [String]])] = []
        /// Confirmed entries whose XACK has not gone through yet.
        var confirmed: [String: [String]] = [:]
        /// Entries handed out and not acknowledged, per stream: a claim or a re-read of this
        /// consumer's pending entries must not hand them out twice.
        var inFlight: [String: Set<String>] = [:]
    }

    /// A batch waits at most this long for more entries once it has one.
    static let batchWindow = Duration.milliseconds(20)

    public init(settings: RedisSourceConfig, source: MessageSourceConfig, pipe: String, logger: Logger) {
        self.settings = settings
        self.source = source
        self.pipe = pipe
        self.logger = logger.forPipe(pipe)
        writer = MessageEventWriter(kind: "redis", format: source.format, keyFields: source.key)
        var streams: [String: (sourceHead: [UInt8], escapedName: [UInt8])] = [:]
        for stream in settings.streams {
            var escaped: [UInt8] = []
            JSONBytes.appendEscaped(stream, into: &escaped)
            let table = MessageEventWriter.table(source.table, values: ["stream": stream, "pipe": pipe])
            streams[stream] = (MessageEventWriter.sourceHead(kind: "redis", table: table), escaped)
        }
        self.streams = streams
        // pgbridge's Redis sink writes its events (native or Debezium) in the field `event`.
        field = settings.field ?? (source.format == .native || source.format == .debezium ? "event" : nil)
        counters = MessageSourceCounters(pipe: pipe)
    }

    public func start() async throws {
        thread.start { [self] in run() }
    }

    private func run() {
        var progress = Progress()
        thread.runReconnecting(
            "redis source, streams \(settings.streams)",
            meanwhile: "unacknowledged entries stay pending and are read again", logger: logger
        ) { handedOut in
            try consume(&progress, delivered: &handedOut)
        }
    }

    /// How often entries pending too long are looked for.
    var claimInterval: Duration { max(.milliseconds(100), min(settings.claimAfter / 2, .seconds(10))) }

    private func consume(_ progress: inout Progress, delivered: inout Bool) throws {
        let connection = try RedisConnection(config: settings.connection)
        defer { connection.disconnect() }
        try connection.connect()
        // In flight are exactly the entries of the batches handed out and not acknowledged yet:
        // entries a failed read had taken into a batch that was never handed out are read again.
        progress.inFlight = [:]
        for entries in progress.unconfirmed.map(\.entries) + [progress.confirmed] {
            for (stream, ids) in entries { progress.inFlight[stream, default: []].formUnion(ids) }
        }
        for stream in settings.streams {
            let start = settings.start == .earliest ? "0" : "$"
            do {
                if try connection.createGroup(stream: stream, group: settings.group, start: start) {
                    logger.info(
                        "redis source: created consumer group \(settings.group) on stream \(stream), reading from its \(settings.start == .earliest ? "first entry" : "end")"
                    )
                }
            } catch let error as SinkError where error.message.contains("NOPERM") {
                // A user allowed to read but not to create groups: the group may exist already
                // (XREADGROUP says so if it does not).
                logger.warning(
                    "redis source: cannot create consumer group \(settings.group) on stream \(stream) (\(error.message)); reading with the group as it is"
                )
            }
        }
        logger.info(
            "reading redis streams",
            metadata: [
                "streams": "\(settings.streams)", "group": "\(settings.group)", "consumer": "\(settings.consumer)",
            ])
        // This consumer's own pending entries first (delivered before a restart or a lost
        // connection, never acknowledged), then new ones; claims once those are read.
        var pendingAfter = Dictionary(uniqueKeysWithValues: settings.streams.map { ($0, "0") })
        var lastClaim = ContinuousClock.now - claimInterval
        var measuredAt = ContinuousClock.now - MessageSourceCounters.measureInterval
        var measureFailed = false
        var claimCursors: [String: String] = [:]
        var fullSince: ContinuousClock.Instant?
        var pauseReported = false
        var scratch: [UInt8] = []
        while !thread.stopRequested {
            try acknowledgeConfirmed(connection, &progress)
            if ContinuousClock.now - measuredAt >= MessageSourceCounters.measureInterval {
                measuredAt = .now
                measure(connection, &measureFailed)
            }
            if !thread.queue.hasRoom {
                let since = fullSince ?? .now
                fullSince = since
                if !pauseReported, ContinuousClock.now - since > .seconds(5) {
                    pauseReported = true
                    logger.info(
                        "redis source: the sinks took no batches for 5 s (see their errors): reading is paused, entries wait in the streams"
                    )
                }
                thread.queue.waitForRoom(timeout: .milliseconds(200))
                continue
            }
            if pauseReported { logger.info("redis source: the sinks take batches again: reading resumed") }
            fullSince = nil
            pauseReported = false
            var batch = EventBatch()
            var handed: [String: [String]] = [:]
            var count = 0
            var bytes = 0
            /// Adds the entries not in flight to the batch; returns how many.
            @discardableResult
            func take(_ stream: String, _ entries: [RedisStreamEntry]) throws -> Int {
                let before = count
                for entry in entries where progress.inFlight[stream, default: []].insert(entry.id).inserted {
                    guard entry.fields != nil else {
                        // Deleted (XDEL, MAXLEN) after it was delivered: nothing to deliver.
                        try connection.acknowledge(stream: stream, group: settings.group, ids: [entry.id])
                        progress.inFlight[stream]?.remove(entry.id)
                        logger.warning(
                            "redis source: entry \(entry.id) of stream \(stream) was deleted before it was acknowledged: acknowledged, nothing to deliver"
                        )
                        continue
                    }
                    bytes += add(entry, stream: stream, into: &batch, scratch: &scratch)
                    handed[stream, default: []].append(entry.id)
                    count += 1
                }
                return count - before
            }
            if !pendingAfter.isEmpty {
                for stream in settings.streams {
                    guard let after = pendingAfter[stream] else { continue }
                    guard count < settings.batchMessages else { break }
                    let read = try connection.readGroup(
                        streams: [stream], group: settings.group, consumer: settings.consumer,
                        count: settings.batchMessages - count, after: [after])
                    let entries = read.first?.entries ?? []
                    if let last = entries.last {
                        pendingAfter[stream] = last.id
                        let taken = try take(stream, entries)
                        if after == "0", taken > 0 {
                            logger.warning(
                                "redis source: stream \(stream) has entries this consumer (\(settings.consumer)) read before and never acknowledged: delivering them again (at least once)"
                            )
                        }
                    } else {
                        pendingAfter[stream] = nil
                    }
                }
            } else if ContinuousClock.now - lastClaim >= claimInterval {
                lastClaim = .now
                for stream in settings.streams where count < settings.batchMessages {
                    let claimed = try claim(
                        connection, stream: stream, room: settings.batchMessages - count,
                        inFlight: progress.inFlight[stream] ?? [], cursor: &claimCursors[stream, default: "0-0"])
                    if try take(stream, claimed) > 0 {
                        logger.warning(
                            "redis source: claimed \(claimed.count) entries of stream \(stream) that a consumer of group \(settings.group) left unacknowledged for more than \(settings.claimAfter) (it stopped or hangs): delivering them"
                        )
                    }
                }
            }
            let deadline = ContinuousClock.now + Self.batchWindow
            while count < settings.batchMessages, !thread.stopRequested {
                let block: Duration? = count == 0 ? .milliseconds(100) : nil
                let read = try connection.readGroup(
                    streams: settings.streams, group: settings.group, consumer: settings.consumer,
                    count: settings.batchMessages - count, block: block)
                var got = 0
                for (stream, entries) in read {
                    got += entries.count
                    try take(stream, entries)
                }
                if count == 0 {
                    // Idle: acknowledge what was confirmed; claims and measurements are due now and then.
                    try acknowledgeConfirmed(connection, &progress)
                    if ContinuousClock.now - lastClaim >= claimInterval
                        || ContinuousClock.now - measuredAt >= MessageSourceCounters.measureInterval
                    {
                        break
                    }
                } else if got == 0 || ContinuousClock.now >= deadline {
                    break
                }
            }
            if count > 0 {
                counters.counted(messages: count, bytes: bytes, refused: batch.refused.count)
                progress.sequence += 1
                batch.sequence = progress.sequence
                progress.unconfirmed.append((progress.sequence, handed))
                thread.put(batch)
                delivered = true
            }
        }
        drain(connection, &progress)
    }

    /// Each stream's lag and pending entries for the group: best effort (a user without
    /// XINFO, a Redis before 7: logged once, the reading goes on).
    private func measure(_ connection: RedisConnection, _ failed: inout Bool) {
        var lag: [String: Int64] = [:]
        var pending: [String: Int64] = [:]
        do {
            for stream in settings.streams {
                guard let info = try connection.groupInfo(stream: stream, group: settings.group) else { continue }
                pending[stream] = info.pending
                if let value = info.lag { lag[stream] = value }
            }
        } catch {
            if !failed {
                failed = true
                logger.warning(
                    "redis source: cannot measure the streams' lag (\(error)); lag and pending are not shown, the reading goes on (logged once)"
                )
            }
            if !connection.isConnected { return }
        }
        counters.measured(lag: lag, pending: pending)
    }

    /// Entries of `stream` pending longer than `claim_after` with another consumer (or with this
    /// one, left by a run before), now this one's: at most `room` of them and 10 round trips
    /// per pass, continuing from `cursor` (the next pass goes on where this one stopped).
    /// Entries in flight (this run's own, taking long) are claimed back but not counted.
    private func claim(
        _ connection: RedisConnection, stream: String, room: Int, inFlight: Set<String>, cursor: inout String
    ) throws -> [RedisStreamEntry] {
        var claimed: [RedisStreamEntry] = []
        for _ in 0..<10 {
            let (next, entries) = try connection.autoClaim(
                stream: stream, group: settings.group, consumer: settings.consumer, minIdle: settings.claimAfter,
                start: cursor, count: max(1, min(100, room - claimed.count)))
            claimed += entries.filter { !inFlight.contains($0.id) }
            cursor = next
            if cursor == "0-0" || claimed.count >= room { break }
        }
        return claimed
    }

    /// Acknowledges the entries of the batches every sink confirmed.
    private func acknowledgeConfirmed(_ connection: RedisConnection, _ progress: inout Progress) throws {
        let confirmed = thread.acknowledged
        while let first = progress.unconfirmed.first, first.sequence <= confirmed {
            progress.confirmed.merge(first.entries) { $0 + $1 }
            progress.unconfirmed.removeFirst()
        }
        while let (stream, ids) = progress.confirmed.first {
            try connection.acknowledge(stream: stream, group: settings.group, ids: ids)
            progress.confirmed[stream] = nil
            progress.inFlight[stream]?.subtract(ids)
        }
    }

    /// At a stop: waits (bounded) for the batches handed out to be confirmed and acknowledges
    /// them; the rest stays pending, read again by this consumer's next run.
    private func drain(_ connection: RedisConnection, _ progress: inout Progress) {
        if let last = progress.unconfirmed.last?.sequence {
            _ = thread.waitForAcknowledgement(through: last, timeout: .seconds(30))
        }
        do {
            try acknowledgeConfirmed(connection, &progress)
        } catch {
            logger.warning(
                "redis source: \(error); the entries stay pending and are read again by consumer \(settings.consumer)")
        }
    }

    /// Adds the entry's event (or its refusal) to `batch`; returns the size of its values.
    private func add(_ entry: RedisStreamEntry, stream: String, into batch: inout EventBatch, scratch: inout [UInt8])
        -> Int
    {
        guard let names = streams[stream], let fields = entry.fields else { return 0 }
        let size = fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.count }
        func metadata(_ out: inout [UInt8]) {
            JSONBytes.appendRaw("\"stream\":\"", into: &out)
            out.append(contentsOf: names.escapedName)
            JSONBytes.appendRaw("\",\"entry_id\":", into: &out)
            JSONBytes.appendString(entry.id, into: &out)
            out.append(UInt8(ascii: ","))
        }
        func refuse(_ reason: String, _ payload: UnsafeRawBufferPointer) {
            batch.refused.append(
                RefusedMessage(
                    reason: "stream \(stream), entry \(entry.id): \(reason)",
                    record: MessageEventWriter.refusedRecord(payload: payload) { out in
                        JSONBytes.appendRaw("\"kind\":\"redis\",", into: &out)
                        metadata(&out)
                    }))
        }
        func append(_ payload: UnsafeRawBufferPointer) {
            let problem = writer.append(
                payload: payload, messageKey: nil, sourceHead: names.sourceHead,
                id: { out in
                    JSONBytes.appendRaw("redis:", into: &out)
                    out.append(contentsOf: names.escapedName)
                    out.append(UInt8(ascii: ":"))
                    out.append(contentsOf: entry.id.utf8)
                }, metadata: metadata, into: &batch)
            if let problem { refuse(problem, payload) }
        }
        if let field {
            guard let value = fields.first(where: { $0.name == field })?.value else {
                refuse(
                    "the entry has no field \"\(field)\" (the source's field); its fields: \(fields.map(\.name))",
                    UnsafeRawBufferPointer(start: nil, count: 0))
                return size
            }
            value.withUnsafeBytes { append($0) }
            return size
        }
        // The entry's fields as one JSON object of strings (PostgreSQL converts them on write).
        scratch.removeAll(keepingCapacity: true)
        scratch.append(UInt8(ascii: "{"))
        for (index, item) in fields.enumerated() {
            let text = item.value.withUnsafeBytes { value -> Bool in
                guard JSONValidator.isUTF8(value) else { return false }
                if index > 0 { scratch.append(UInt8(ascii: ",")) }
                JSONBytes.appendString(item.name, into: &scratch)
                scratch.append(UInt8(ascii: ":"))
                JSONBytes.appendString(value, into: &scratch)
                return true
            }
            guard text else {
                item.value.withUnsafeBytes {
                    refuse(
                        "field \"\(item.name)\" is not UTF-8 text: set field: \(item.name) with format text to read its bytes",
                        $0)
                }
                return size
            }
        }
        scratch.append(UInt8(ascii: "}"))
        scratch.withUnsafeBytes { append($0) }
        return size
    }
}
