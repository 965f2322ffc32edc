import BridgeCore
import Foundation
import KafkaClient
import Logging
import Synchronization

/// Reads a consumer group's topics as change events (`kind: kafka`). Offsets are committed to
/// Kafka only for batches every sink confirmed: at least once everywhere, and exactly once into
/// a `postgres` sink, which records each partition's offset in its own transaction and skips
/// what it applied before.
public final class KafkaSource: ThreadedChangeSource, CountsMessages {
    let settings: KafkaSourceConfig
    let source: MessageSourceConfig
    let pipe: String
    let logger: Logger
    let writer: MessageEventWriter
    public let thread = SourceThread(name: "pgbridge-kafka")
    public let counters: MessageSourceCounters
    /// Whether a Debezium tombstone was met (the skip is logged once).
    let tombstoneReported = Atomic<Bool>(false)
    /// The reading thread's state: the last sequence handed out and the offsets of the batches
    /// not yet confirmed (kept across reconnects: their confirmations still commit).
    struct Progress {
        var sequence: UInt64 = 0
        var unconfirmed: [(sequence: UInt64, next: [Partition: Int64])] = []
        /// Confirmed offsets not committed yet, and when the last commit went out.
        var confirmed: [Partition: Int64] = [:]
        var committedAt = ContinuousClock.now
        /// Commits that failed in a row (their offsets are tried once more, then given up).
        var failedCommits = 0
    }

    /// Confirmed offsets are committed at most this often (a commit is a round trip to the
    /// group coordinator; the batches themselves are confirmed as they are delivered), and
    /// always when the source stops.
    static let commitInterval = Duration.seconds(1)

    /// The last message timestamp written, as RFC 3339 text.
    struct TimestampText {
        var milliseconds = Int64.min
        var text: [UInt8] = []
    }

    struct Partition: Hashable {
        var topic: String
        var partition: Int32
    }

    /// What the events of one topic share.
    struct Topic {
        var name: String
        /// The name escaped for JSON, written into every event of the topic.
        var escapedName: [UInt8]
        var sourceHead: [UInt8]
    }

    public init(settings: KafkaSourceConfig, source: MessageSourceConfig, pipe: String, logger: Logger) {
        self.settings = settings
        self.source = source
        self.pipe = pipe
        self.logger = logger.forPipe(pipe)
        writer = MessageEventWriter(kind: "kafka", format: source.format, keyFields: source.key)
        counters = MessageSourceCounters(pipe: pipe)
    }

    public func start() async throws {
        thread.start { [self] in run() }
    }

    private func run() {
        var progress = Progress()
        thread.runReconnecting(
            "kafka source \(settings.topics)", meanwhile: "nothing is committed meanwhile", logger: logger
        ) { handedOut in
            try consume(&progress, handedOut: &handedOut)
        }
    }

    private func consume(_ progress: inout Progress, handedOut: inout Bool) throws {
        let consumer = try KafkaConsumer(
            config: settings.connection,
            properties: [
                ("group.id", settings.group), ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", settings.start.rawValue), ("enable.partition.eof", "false"),
            ] + KafkaSourceConfig.groupDefaults.filter { settings.connection.properties[$0.0] == nil },
            description: "kafka source (group \(settings.group))", logger: logger)
        // Whatever ends this function (a stop, an error), the group is left within a bound.
        defer { consumer.leaveGroup() }
        try consumer.subscribe(settings.topics)
        logger.info(
            "reading kafka topics",
            metadata: ["topics": "\(settings.topics)", "group": "\(settings.group)", "start": "\(settings.start)"])
        var topics: [OpaquePointer: Topic] = [:]
        // What librdkafka retries by itself (a broker away, a topic that does not exist yet) is
        // logged, each text at most once a minute.
        var reported: [String: ContinuousClock.Instant] = [:]
        func report(_ text: String) {
            if let last = reported[text], ContinuousClock.now - last < .seconds(60) { return }
            if reported.count > 100 { reported.removeAll() }
            reported[text] = .now
            logger.warning("kafka source: \(text) (librdkafka retries; nothing is committed meanwhile)")
        }
        let subscribedAt = ContinuousClock.now
        var readAny = false
        var measuredAt = ContinuousClock.now
        var timestamps = TimestampText()
        // The previous batch's size: the next one's buffers are allocated once at about that size.
        var lastBatch = (bytes: 0, events: 0)
        while !thread.stopRequested {
            var batch = EventBatch()
            var offsets: [Partition: Int64] = [:]
            // Polled messages come in runs of one partition: its next offset is kept here and
            // stored in `offsets` when the run ends (not hashed per message).
            var run: (partition: Partition, next: Int64)?
            let deadline = ContinuousClock.now + .milliseconds(20)
            var messages = 0
            var bytes = 0
            if ContinuousClock.now - measuredAt >= MessageSourceCounters.measureInterval {
                measuredAt = .now
                var lag: [String: Int64] = [:]
                for partition in consumer.lag() { lag["\(partition.topic)[\(partition.partition)]"] = partition.lag }
                counters.measured(lag: lag, pending: [:])
            }
            /// Adds a polled message to the batch; false for anything else.
            func take(_ polled: KafkaConsumer.Polled) -> Bool {
                if case .transient(let text) = polled { report(text) }
                guard case .message(let message) = polled else { return false }
                if messages == 0 {
                    batch.bytes.reserveCapacity(lastBatch.bytes + lastBatch.bytes / 8)
                    batch.eventEnds.reserveCapacity(lastBatch.events)
                }
                let topic = self.topic(message, &topics)
                bytes += self.add(message, topic, &timestamps, into: &batch)
                if run?.partition.partition == message.partition, run?.partition.topic == topic.name {
                    run!.next = message.offset + 1
                } else {
                    if let run { offsets[run.partition] = run.next }
                    run = (Partition(topic: topic.name, partition: message.partition), message.offset + 1)
                }
                messages += 1
                return true
            }
            // The sinks are a little behind: wait (woken as soon as a batch is taken).
            if !thread.queue.hasRoom { thread.queue.waitForRoom(timeout: .seconds(1)) }
            if !thread.queue.hasRoom {
                // The sinks take no batches (one is down): fetching is paused while the
                // consumer keeps polling, so the group keeps the partitions however long the
                // outage lasts (no max.poll.interval.ms expiry) and nothing piles up. A
                // partition assigned meanwhile starts unpaused: its first messages are kept
                // for the next batch, and it is paused too.
                try consumer.pauseAssigned(true)
                let pausedAt = ContinuousClock.now
                var pauseReported = false
                while !thread.queue.hasRoom, !thread.finishRequested {
                    if !pauseReported, ContinuousClock.now - pausedAt > .seconds(5) {
                        pauseReported = true
                        logger.info(
                            "kafka source: the sinks took no batches for 5 s (see their errors): fetching is paused, the group keeps its partitions"
                        )
                    }
                    _ = try consumer.poll(timeoutMilliseconds: 50, take)
                    if messages > 0 { try consumer.pauseAssigned(true) }
                    commitConfirmed(consumer, &progress)
                }
                try consumer.pauseAssigned(false)
                if pauseReported { logger.info("kafka source: the sinks take batches again: fetching resumed") }
            }
            while messages < settings.batchMessages, !thread.stopRequested {
                let wait: Int32 = messages == 0 ? 100 : Int32(max(0, (deadline - .now).nanosecondCount / 1_000_000))
                if try consumer.poll(timeoutMilliseconds: wait, take) { continue }
                if messages > 0 || wait == 0 { break }
                commitConfirmed(consumer, &progress)
            }
            if messages > 0, !readAny {
                readAny = true
                logger.info(
                    "kafka source: the group assigned partitions; the first messages came \(ContinuousClock.now - subscribedAt) after subscribing"
                )
            }
            if let run { offsets[run.partition] = run.next }
            if messages > 0 {
                lastBatch = (batch.bytes.count, batch.eventCount)
                counters.counted(messages: messages, bytes: bytes, refused: batch.refused.count)
                progress.sequence += 1
                batch.sequence = progress.sequence
                progress.unconfirmed.append((progress.sequence, offsets))
                thread.put(batch)
                handedOut = true
            }
            commitConfirmed(consumer, &progress)
        }
        drain(consumer, &progress)
    }

    /// Waits (bounded) for the batches handed out to be confirmed and commits them: a clean
    /// stop reads nothing twice.
    private func drain(_ consumer: KafkaConsumer, _ progress: inout Progress) {
        if let last = progress.unconfirmed.last?.sequence {
            _ = thread.waitForAcknowledgement(through: last, timeout: .seconds(30))
        }
        commitConfirmed(consumer, &progress, now: true)
    }

    /// Commits the offsets of the confirmed batches (newest per partition), at most once per
    /// `commitInterval` unless `now`.
    private func commitConfirmed(_ consumer: KafkaConsumer, _ progress: inout Progress, now: Bool = false) {
        let confirmed = thread.acknowledged
        while let entry = progress.unconfirmed.first, entry.sequence <= confirmed {
            progress.confirmed.merge(entry.next) { max($0, $1) }
            progress.unconfirmed.removeFirst()
        }
        guard !progress.confirmed.isEmpty, now || ContinuousClock.now - progress.committedAt >= Self.commitInterval
        else { return }
        let offsets = progress.confirmed
        progress.confirmed = [:]
        progress.committedAt = .now
        do {
            try consumer.commit(offsets.map { (topic: $0.key.topic, partition: $0.key.partition, next: $0.value) })
        } catch {
            // A partition taken away by a rebalance: its new owner reads from the last commit
            // (at least once; a postgres sink skips what it applied). The offsets are tried
            // again with the next commit (a partition this consumer lost refuses them again).
            progress.failedCommits += 1
            if progress.failedCommits == 1 {
                progress.confirmed.merge(offsets) { max($0, $1) }
                logger.warning("kafka source: \(error); trying again with the next commit")
            } else {
                logger.warning(
                    "kafka source: \(error); these offsets are not committed (their messages may be read again)")
            }
            return
        }
        progress.failedCommits = 0
    }

    private func topic(_ message: KafkaReceivedMessage, _ topics: inout [OpaquePointer: Topic]) -> Topic {
        if let handle = message.topicHandle, let known = topics[handle] { return known }
        let name = message.topic
        let table = MessageEventWriter.table(source.table, values: ["topic": name, "pipe": pipe])
        var escapedName: [UInt8] = []
        JSONBytes.appendEscaped(name, into: &escapedName)
        let topic = Topic(
            name: name, escapedName: escapedName,
            sourceHead: MessageEventWriter.sourceHead(kind: "kafka", table: table))
        if let handle = message.topicHandle { topics[handle] = topic }
        return topic
    }

    /// Adds the message's event (or its refusal) to `batch`; returns its payload's size.
    private func add(
        _ message: KafkaReceivedMessage, _ topic: Topic, _ timestamps: inout TimestampText, into batch: inout EventBatch
    ) -> Int {
        if message.payload == nil, writer.format == .debezium {
            // Debezium follows each delete with a tombstone (a null value) for log compaction.
            if !tombstoneReported.exchange(true, ordering: .relaxed) {
                logger.warning(
                    "kafka source: \(topic.name)[\(message.partition)] offset \(message.offset) is a tombstone (no value), which Debezium writes after each delete for log compaction: it carries no change and is skipped, as every later tombstone (logged once)"
                )
            }
            return 0
        }
        let payload = message.payload ?? UnsafeRawBufferPointer(start: nil, count: 0)
        func metadata(_ out: inout [UInt8]) {
            JSONBytes.appendRaw("\"topic\":\"", into: &out)
            out.append(contentsOf: topic.escapedName)
            JSONBytes.appendRaw("\",\"partition\":", into: &out)
            JSONBytes.appendInt(Int64(message.partition), into: &out)
            JSONBytes.appendRaw(",\"offset\":", into: &out)
            JSONBytes.appendInt(message.offset, into: &out)
            if let milliseconds = message.timestampMilliseconds {
                // A producer may set any value (nanoseconds by mistake): out of range, it is
                // kept as the number it is.
                let (microseconds, overflow) = milliseconds.multipliedReportingOverflow(by: 1000)
                if !overflow, (0...253_402_300_799_000_000).contains(microseconds) {
                    JSONBytes.appendRaw(",\"timestamp\":\"", into: &out)
                    if timestamps.milliseconds != milliseconds {
                        // A producer's batch shares one timestamp: written once.
                        timestamps.milliseconds = milliseconds
                        timestamps.text.removeAll(keepingCapacity: true)
                        PostgresTime.writeRFC3339(
                            PostgresTime.fromUnixMicroseconds(microseconds), into: &timestamps.text)
                    }
                    out.append(contentsOf: timestamps.text)
                    out.append(UInt8(ascii: "\""))
                } else {
                    JSONBytes.appendRaw(",\"timestamp_ms\":", into: &out)
                    JSONBytes.appendInt(milliseconds, into: &out)
                }
            }
            if let key = message.key {
                JSONBytes.appendRaw(",\"message_key\":", into: &out)
                JSONBytes.appendString(key, into: &out)
            }
            var first = true
            message.forEachHeader { name, value in
                JSONBytes.appendRaw(first ? ",\"headers\":{" : ",", into: &out)
                first = false
                JSONBytes.appendString(name, into: &out)
                out.append(UInt8(ascii: ":"))
                if let value {
                    JSONBytes.appendString(value, into: &out)
                } else {
                    JSONBytes.appendRaw("null", into: &out)
                }
            }
            if !first { out.append(UInt8(ascii: "}")) }
            out.append(UInt8(ascii: ","))
        }
        let problem = writer.append(
            payload: payload, messageKey: message.key, sourceHead: topic.sourceHead,
            id: { out in
                JSONBytes.appendRaw("kafka:", into: &out)
                out.append(contentsOf: topic.escapedName)
                out.append(UInt8(ascii: ":"))
                JSONBytes.appendInt(Int64(message.partition), into: &out)
                out.append(UInt8(ascii: ":"))
                JSONBytes.appendInt(message.offset, into: &out)
            }, metadata: metadata, into: &batch)
        if let problem {
            let reason = message.payload == nil ? "the message has no value (a tombstone): \(problem)" : problem
            batch.refused.append(
                RefusedMessage(
                    reason: "\(topic.name)[\(message.partition)] offset \(message.offset): \(reason)",
                    record: MessageEventWriter.refusedRecord(payload: payload) { out in
                        JSONBytes.appendRaw("\"kind\":\"kafka\",", into: &out)
                        metadata(&out)
                    }))
        }
        return payload.count
    }
}
