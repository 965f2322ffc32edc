import AMQPClient
import BridgeCore
import Logging

/// Publishes events to a RabbitMQ exchange with publisher confirms.
///
/// Messages are persistent, `mandatory` (an unroutable message comes back and is rejected
/// instead of vanishing), carry `message_id` = event id, `type` = op and
/// `content_type: application/json`. At most `max_in_flight` messages are unconfirmed at once;
/// a delivery returns when the broker confirmed (or nacked / returned) every message.
public final class RabbitMQSink: EventSink {
    public let config: RabbitMQSinkConfig
    let client: RabbitMQClient
    let maxInFlight: Int
    let confirmTimeout: Duration
    let logger: Logger
    /// Routing-key templates of the pipe's routes (index = route - 1; nil = the sink's own).
    let routeKeys: [NameTemplate?]

    public init(
        config: RabbitMQSinkConfig, client: RabbitMQClient, maxInFlight: Int = 10_000,
        confirmTimeout: Duration = .seconds(30), routeKeys: [NameTemplate?] = [], logger: Logger
    ) {
        self.routeKeys = routeKeys
        self.config = config
        self.client = client
        self.maxInFlight = maxInFlight
        self.confirmTimeout = confirmTimeout
        self.logger = logger
    }

    public var description: String {
        "rabbitmq:\(client.description) exchange \"\(config.exchange)\" routing key \(config.routingKey)"
    }

    public func open() async throws {
        try await client.open()
        if let queue = config.queue {
            let config = config
            try await client.run {
                try $0.declare(queue: queue, exchange: config.exchange, bindingKey: config.bindingKey)
            }
        }
    }

    public func close() async { await client.close() }

    public func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
        let config = config
        let maxInFlight = maxInFlight
        let confirmTimeout = confirmTimeout
        let routeKeys = routeKeys
        return try await client.run { connection in
            if let queue = config.queue {
                try connection.declare(queue: queue, exchange: config.exchange, bindingKey: config.bindingKey)
            }
            var tracker = ConfirmTracker(firstTag: connection.nextDeliveryTag)
            var routingKey: [UInt8] = []
            let exchange = Array(config.exchange.utf8)
            for (batchIndex, batch) in batches.enumerated() {
                try batch.forEachEvent { bytes, eventIndex, fields, body in
                    routingKey.removeAll(keepingCapacity: true)
                    let route = Int(batch.route(at: eventIndex))
                    let template =
                        route > 0 && route <= routeKeys.count
                        ? routeKeys[route - 1] ?? config.routingKey : config.routingKey
                    template.render(fields, bytes, into: &routingKey)
                    let raw = UnsafeRawBufferPointer(bytes)
                    let id = fields.id ?? 0..<0
                    let op = fields.op ?? 0..<0
                    let tag = try exchange.withUnsafeBytes { exchangeBytes in
                        try routingKey.withUnsafeBytes { keyBytes in
                            try connection.publish(
                                exchange: exchangeBytes, routingKey: keyBytes,
                                body: UnsafeRawBufferPointer(body),
                                messageID: UnsafeRawBufferPointer(rebasing: raw[id]),
                                type: UnsafeRawBufferPointer(rebasing: raw[op]), mandatory: config.mandatory,
                                persistent: config.persistent)
                        }
                    }
                    tracker.published(tag: tag, batch: batchIndex, event: eventIndex)
                    while tracker.outstanding >= maxInFlight {
                        try tracker.await(connection, batches: batches, timeout: confirmTimeout)
                    }
                }
            }
            while tracker.outstanding > 0 {
                try tracker.await(connection, batches: batches, timeout: confirmTimeout)
            }
            connection.releaseBuffers()
            return DeliveryResult(rejected: tracker.rejections)
        }
    }
}

/// Which published messages the broker confirmed, nacked or returned.
struct ConfirmTracker {
    let firstTag: UInt64
    /// Per published message: its event, and whether it is settled.
    private var positions: [(batch: Int32, event: Int32)] = []
    private var settled: [Bool] = []
    /// Every message below this index is settled.
    private var lowestPending = 0
    private(set) var outstanding = 0
    private(set) var rejections: [Rejection] = []
    /// Messages returned as unroutable; their ack follows.
    private var returned: [Int: String] = [:]

    init(firstTag: UInt64) {
        self.firstTag = firstTag
    }

    mutating func published(tag: UInt64, batch: Int, event: Int) {
        precondition(tag == firstTag + UInt64(positions.count), "delivery tags are consecutive on one channel")
        positions.append((Int32(batch), Int32(event)))
        settled.append(false)
        outstanding += 1
    }

    /// Waits for the next broker event and applies it.
    mutating func await(_ connection: AMQPConnection, batches: [EventBatch], timeout: Duration) throws {
        guard let event = try connection.nextEvent(timeout: timeout) else {
            connection.abandon()
            throw connection.failure(
                "no publisher confirm within \(timeout) for \(outstanding) messages: reconnecting")
        }
        switch event {
        case .ack(let tag, let multiple):
            for index in settle(tag: tag, multiple: multiple) {
                if let reason = returned.removeValue(forKey: index) {
                    reject(index, reason: "RabbitMQ returned the message as unroutable: \(reason)", permanent: false)
                }
            }
        case .nack(let tag, let multiple):
            for index in settle(tag: tag, multiple: multiple) {
                reject(index, reason: "RabbitMQ did not accept the message (basic.nack)", permanent: false)
            }
        case .returned(let messageID, let reason):
            if let index = index(ofMessageID: messageID, in: batches) { returned[index] = reason }
        }
    }

    /// Marks messages settled; returns the ones that were not yet.
    private mutating func settle(tag: UInt64, multiple: Bool) -> [Int] {
        guard tag >= firstTag else { return [] }
        let last = Int(tag - firstTag)
        guard last < positions.count, !multiple || lowestPending <= last else { return [] }
        var newlySettled: [Int] = []
        for index in (multiple ? lowestPending...last : last...last) where !settled[index] {
            settled[index] = true
            outstanding -= 1
            newlySettled.append(index)
        }
        while lowestPending < settled.count, settled[lowestPending] { lowestPending += 1 }
        return newlySettled
    }

    private mutating func reject(_ index: Int, reason: String, permanent: Bool) {
        let position = positions[index]
        rejections.append(
            Rejection(batch: Int(position.batch), event: Int(position.event), reason: reason, isPermanent: permanent))
    }

    /// Finds a returned message among the pending ones by its message id (rare: a linear search).
    private func index(ofMessageID id: [UInt8], in batches: [EventBatch]) -> Int? {
        for index in lowestPending..<positions.count where !settled[index] {
            let position = positions[index]
            let batch = batches[Int(position.batch)]
            let matches = batch.bytes.withUnsafeBufferPointer { bytes in
                let fields = EventFields.scan(bytes, event: batch.eventRange(at: Int(position.event)))
                return fields.id.map { bytes[$0].elementsEqual(id) } ?? false
            }
            if matches { return index }
        }
        return nil
    }
}
