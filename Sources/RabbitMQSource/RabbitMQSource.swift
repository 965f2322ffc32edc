import AMQPClient
import BridgeCore
import Foundation
import Logging

/// Consumes a queue as change events (`kind: rabbitmq`), with manual acknowledgements: a
/// message is acknowledged only once every sink confirmed the batch it came in (at least
/// once). Whatever was not acknowledged when the connection ends, RabbitMQ delivers again.
public final class RabbitMQSource: ThreadedChangeSource, CountsMessages {
    let settings: RabbitMQSourceConfig
    let source: MessageSourceConfig
    let pipe: String
    let logger: Logger
    let writer: MessageEventWriter
    /// What every event's source block starts with, and the queue's name escaped for JSON.
    let sourceHead: [UInt8]
    let escapedQueue: [UInt8]
    public let thread = SourceThread(name: "pgbridge-rabbitmq")
    public let counters: MessageSourceCounters

    /// The reading thread's state, kept across reconnects.
    struct Progress {
        var sequence: UInt64 = 0
        /// Batches handed out and not yet confirmed: the connection they were delivered on and
        /// their last delivery tag (tags count per channel, from 1 on every connection).
        var unconfirmed: [(sequence: UInt64, connection: Int, lastTag: UInt64)] = []
        var connection = 0
    }

    /// A batch waits at most this long for more messages once it has one.
    static let batchWindow = Duration.milliseconds(20)

    public init(settings: RabbitMQSourceConfig, source: MessageSourceConfig, pipe: String, logger: Logger) {
        self.settings = settings
        self.source = source
        self.pipe = pipe
        self.logger = logger.forPipe(pipe)
        writer = MessageEventWriter(kind: "rabbitmq", format: source.format, keyFields: source.key)
        sourceHead = MessageEventWriter.sourceHead(
            kind: "rabbitmq",
            table: MessageEventWriter.table(source.table, values: ["queue": settings.queue, "pipe": pipe]))
        var escaped: [UInt8] = []
        JSONBytes.appendEscaped(settings.queue, into: &escaped)
        escapedQueue = escaped
        counters = MessageSourceCounters(pipe: pipe)
    }

    public func start() async throws {
        thread.start { [self] in run() }
    }

    private func run() {
        var progress = Progress()
        thread.runReconnecting(
            "rabbitmq source, queue \(settings.queue)",
            meanwhile: "RabbitMQ keeps what was not acknowledged and delivers it again", logger: logger
        ) { handedOut in
            try consume(&progress, consumed: &handedOut)
        }
    }

    /// One connection's consuming, until a stop (returns) or an error (throws).
    private func consume(_ progress: inout Progress, consumed: inout Bool) throws {
        let connection = try AMQPConnection.consuming(config: settings.connection)
        // Closing the connection gives back to the queue whatever it holds unacknowledged.
        defer { connection.disconnect() }
        try connection.startConsuming(queue: settings.queue, prefetch: UInt16(settings.prefetch))
        progress.connection += 1
        let generation = progress.connection
        let stale = progress.unconfirmed.filter { $0.connection != generation }.count
        if stale > 0 {
            // Their messages went back to the queue with the old connection: RabbitMQ delivers
            // them again (marked redelivered), and the batches still in the pipe are delivered
            // too: at least once.
            progress.unconfirmed.removeAll { $0.connection != generation }
            logger.warning(
                "rabbitmq source, queue \(settings.queue): \(stale) batches handed out before the connection was lost cannot be acknowledged; RabbitMQ delivers their messages again (at least once)"
            )
        }
        logger.info(
            "consuming rabbitmq queue",
            metadata: [
                "queue": "\(settings.queue)", "prefetch": "\(settings.prefetch)", "url": "\(connection.description)",
            ]
        )
        // Ids are unique per connection: its start (milliseconds) and the delivery tag.
        var stamp: [UInt8] = []
        JSONBytes.appendInt(Int64(Date().timeIntervalSince1970 * 1000), into: &stamp)
        var batch = EventBatch()
        var count = 0
        var bytes = 0
        var measuredAt = ContinuousClock.now - MessageSourceCounters.measureInterval
        var lastTag: UInt64 = 0
        var acknowledgedTag: UInt64 = 0
        var deadline = ContinuousClock.now
        var fullSince: ContinuousClock.Instant?
        var pauseReported = false
        var measureFailed = false
        while !thread.stopRequested {
            if let tag = try acknowledgeConfirmed(connection, &progress, generation: generation) {
                acknowledgedTag = tag
            }
            if ContinuousClock.now - measuredAt >= MessageSourceCounters.measureInterval {
                measuredAt = .now
                measure(connection, pending: Int64(lastTag - acknowledgedTag), &measureFailed)
            }
            let room = thread.queue.hasRoom
            let due = count >= settings.batchMessages || (count > 0 && ContinuousClock.now >= deadline)
            if due, room {
                counters.counted(messages: count, bytes: bytes, refused: batch.refused.count)
                progress.sequence += 1
                batch.sequence = progress.sequence
                progress.unconfirmed.append((progress.sequence, generation, lastTag))
                thread.put(batch)
                consumed = true
                batch = EventBatch()
                count = 0
                bytes = 0
                if pauseReported { logger.info("rabbitmq source: the sinks take batches again") }
                fullSince = nil
                pauseReported = false
                continue
            }
            if !room {
                // The sinks take no batches (one is down): deliveries are still read, so that
                // heartbeats are answered and the connection stays, but the broker sends at
                // most `prefetch` unacknowledged messages: nothing piles up.
                let since = fullSince ?? .now
                fullSince = since
                if !pauseReported, ContinuousClock.now - since > .seconds(5) {
                    pauseReported = true
                    logger.info(
                        "rabbitmq source: the sinks took no batches for 5 s (see their errors): at most \(settings.prefetch) messages stay unacknowledged until they do"
                    )
                }
            }
            let wait = count == 0 || !room ? Duration.milliseconds(100) : max(.zero, deadline - .now)
            guard let delivery = try connection.nextDelivery(timeout: wait) else { continue }
            if count == 0 { deadline = .now + Self.batchWindow }
            add(delivery, stamp: stamp, into: &batch)
            count += 1
            bytes += delivery.message.body.count
            lastTag = delivery.deliveryTag
        }
        drain(connection, &progress, generation: generation, acknowledged: acknowledgedTag, received: lastTag)
    }

    /// Acknowledges (multiple) through the last batch every sink confirmed; returns its tag.
    private func acknowledgeConfirmed(_ connection: AMQPConnection, _ progress: inout Progress, generation: Int)
        throws -> UInt64?
    {
        let confirmed = thread.acknowledged
        var tag: UInt64?
        while let first = progress.unconfirmed.first, first.sequence <= confirmed {
            if first.connection == generation { tag = first.lastTag }
            progress.unconfirmed.removeFirst()
        }
        if let tag { try connection.acknowledge(deliveryTag: tag, multiple: true) }
        return tag
    }

    /// The queue's ready messages and the deliveries held: best effort (a measurement that
    /// fails is logged once and skipped; the consuming goes on).
    private func measure(_ connection: AMQPConnection, pending: Int64, _ failed: inout Bool) {
        do {
            let ready = try connection.readyMessages(queue: settings.queue)
            counters.measured(lag: [settings.queue: ready], pending: [settings.queue: pending])
        } catch {
            counters.measured(lag: [:], pending: [settings.queue: pending])
            if !failed {
                failed = true
                logger.warning(
                    "rabbitmq source: cannot read the depth of queue \(settings.queue) (\(error)); lag is not shown, the consuming goes on (logged once)"
                )
            }
        }
    }

    /// At a stop: cancels the consumer, waits (bounded) for the batches handed out to be
    /// confirmed and acknowledges them; what remains goes back to the queue at once
    /// (`basic.nack` with requeue, to other consumers: this one no longer takes deliveries).
    private func drain(
        _ connection: AMQPConnection, _ progress: inout Progress, generation: Int, acknowledged: UInt64,
        received: UInt64
    ) {
        var acknowledged = acknowledged
        var received = received
        do {
            try connection.cancelConsuming()
            func readRest() throws {
                while let delivery = try connection.nextDelivery(timeout: .zero) {
                    received = max(received, delivery.deliveryTag)
                }
            }
            if let last = progress.unconfirmed.last?.sequence {
                // In slices: rabbitmq-c answers heartbeats only while it reads.
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline,
                    thread.waitForAcknowledgement(through: last, timeout: .seconds(1)) == .timedOut
                {
                    try readRest()
                }
            }
            try readRest()
            if let tag = try acknowledgeConfirmed(connection, &progress, generation: generation) {
                acknowledged = tag
            }
            if received > acknowledged {
                try connection.reject(deliveryTag: received, multiple: true, requeue: true)
                logger.info(
                    "rabbitmq source: \(received - acknowledged) messages not confirmed by every sink went back to queue \(settings.queue)"
                )
            }
        } catch {
            logger.warning(
                "rabbitmq source: \(error); what was not acknowledged goes back to queue \(settings.queue) as the connection closes"
            )
        }
    }

    private func add(_ delivery: ConsumedMessage, stamp: [UInt8], into batch: inout EventBatch) {
        let message = delivery.message
        func metadata(_ out: inout [UInt8]) {
            JSONBytes.appendRaw("\"queue\":\"", into: &out)
            out.append(contentsOf: escapedQueue)
            JSONBytes.appendRaw("\",\"exchange\":", into: &out)
            JSONBytes.appendString(message.exchange, into: &out)
            JSONBytes.appendRaw(",\"routing_key\":", into: &out)
            JSONBytes.appendString(message.routingKey, into: &out)
            JSONBytes.appendRaw(",\"delivery_tag\":", into: &out)
            JSONBytes.appendUInt(delivery.deliveryTag, into: &out)
            JSONBytes.appendRaw(message.redelivered ? ",\"redelivered\":true" : ",\"redelivered\":false", into: &out)
            if let messageID = message.messageID {
                JSONBytes.appendRaw(",\"message_id\":", into: &out)
                JSONBytes.appendString(messageID, into: &out)
            }
            for (index, (name, value)) in message.headers.enumerated() {
                JSONBytes.appendRaw(index == 0 ? ",\"headers\":{" : ",", into: &out)
                JSONBytes.appendString(name, into: &out)
                out.append(UInt8(ascii: ":"))
                if let value {
                    JSONBytes.appendString(value, into: &out)
                } else {
                    JSONBytes.appendRaw("null", into: &out)
                }
            }
            if !message.headers.isEmpty { out.append(UInt8(ascii: "}")) }
            out.append(UInt8(ascii: ","))
        }
        message.body.withUnsafeBytes { payload in
            let problem = writer.append(
                payload: payload, messageKey: nil, sourceHead: sourceHead,
                id: { out in
                    JSONBytes.appendRaw("rabbitmq:", into: &out)
                    out.append(contentsOf: escapedQueue)
                    out.append(UInt8(ascii: ":"))
                    out.append(contentsOf: stamp)
                    out.append(UInt8(ascii: "."))
                    JSONBytes.appendUInt(delivery.deliveryTag, into: &out)
                }, metadata: metadata, into: &batch)
            if let problem {
                batch.refused.append(
                    RefusedMessage(
                        reason: "queue \(settings.queue), delivery \(delivery.deliveryTag): \(problem)",
                        record: MessageEventWriter.refusedRecord(payload: payload) { out in
                            JSONBytes.appendRaw("\"kind\":\"rabbitmq\",", into: &out)
                            metadata(&out)
                        }))
            }
        }
    }
}
