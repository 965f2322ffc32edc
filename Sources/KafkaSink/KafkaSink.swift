import BridgeCore
import KafkaClient
import Logging

/// Forwards events to Kafka topics through a shared idempotent producer (`acks=all`).
///
/// Key = the event's primary key as JSON (per-key order: one key, one partition), headers
/// `pgbridge-id`, `pgbridge-op`, `pgbridge-table`. A delivery returns when librdkafka reported
/// every message: delivered, rejected (listed) or, when the cluster was unreachable until
/// `delivery_timeout`, the delivery fails and the pipe sends it again.
public final class KafkaSink: EventSink {
    public let config: KafkaSinkConfig
    let producer: KafkaProducer
    let logger: Logger
    /// Topic templates of the pipe's routes (index = route - 1; nil = the sink's own topic).
    let routeTopics: [NameTemplate?]
    let format: EventFormat

    public init(
        config: KafkaSinkConfig, producer: KafkaProducer, format: EventFormat = .native,
        routeTopics: [NameTemplate?] = [], logger: Logger
    ) {
        self.format = format
        self.config = config
        self.producer = producer
        self.routeTopics = routeTopics
        self.logger = logger
    }

    public var description: String { "\(producer.description) topic \(config.topic)" }

    public func open() async throws { try await producer.open() }
    public func close() async { await producer.close() }

    public func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
        let tracker = KafkaDeliveryTracker(batches: batches, sink: description)
        let trackerID = producer.register(tracker)
        defer { producer.unregister(trackerID) }
        return try await withCheckedThrowingContinuation { continuation in
            tracker.start(continuation)
            producer.onProduceQueueAsync { [self] topics in
                produce(batches, topics, tracker: tracker, trackerID: trackerID)
            }
        }
    }

    /// Runs on the producer's queue.
    private func produce(
        _ batches: [EventBatch], _ topics: KafkaProducer.TopicHandles, tracker: KafkaDeliveryTracker, trackerID: UInt32
    ) {
        do {
            try producer.prepareHandle(keeping: trackerID, topics)
        } catch {
            tracker.abandon(count: batches.reduce(0) { $0 + $1.eventCount }, reason: "\(error)")
            return
        }
        var writer = KafkaMessageWriter(config: config, format: format)
        var index = 0
        for batch in batches {
            batch.forEachEvent { bytes, eventIndex, fields, body in
                let token = UInt(trackerID) << 32 | UInt(UInt32(truncatingIfNeeded: index))
                let route = Int(batch.route(at: eventIndex))
                let topic =
                    route > 0 && route <= routeTopics.count ? routeTopics[route - 1] ?? config.topic : config.topic
                if let failure = writer.produce(
                    producer, topics, fields, bytes, body: body, topic: topic,
                    opaque: UnsafeMutableRawPointer(bitPattern: token))
                {
                    tracker.failed(index, failure)
                }
                index += 1
            }
        }
    }
}

/// Turns one event into the parts of its message (topic, key, value, headers) in reused buffers
/// and hands them to the client's `KafkaMessageBuilder`.
struct KafkaMessageWriter {
    let config: KafkaSinkConfig
    private var topic: [UInt8] = []
    private var key: [UInt8] = []
    private var table: [UInt8] = []
    private var builder = KafkaMessageBuilder()

    static let idHeader = Array("pgbridge-id\0".utf8CString)
    static let opHeader = Array("pgbridge-op\0".utf8CString)
    static let tableHeader = Array("pgbridge-table\0".utf8CString)

    let format: EventFormat
    /// CloudEvents binary mode headers of the current message (`ce_id` …), NUL-terminated names.
    private var cloudEventHeaders: [([CChar], [UInt8])] = []
    static let contentTypeHeader = Array("content-type\0".utf8CString)
    static let structuredContentType = Array("application/cloudevents+json".utf8)
    static let jsonContentType = Array("application/json".utf8)

    init(config: KafkaSinkConfig, format: EventFormat = .native) {
        self.config = config
        self.format = format
    }

    /// Produces one message (copied by librdkafka; blocks while its queue is full).
    mutating func produce(
        _ producer: KafkaProducer, _ topics: KafkaProducer.TopicHandles, _ fields: EventFields,
        _ bytes: UnsafeBufferPointer<UInt8>,
        body: UnsafeBufferPointer<UInt8>, topic template: NameTemplate, opaque: UnsafeMutableRawPointer?
    ) -> KafkaProduceFailure? {
        topic.removeAll(keepingCapacity: true)
        template.render(fields, bytes, into: &topic)
        guard !topic.isEmpty else {
            return .invalid("the topic template \(template) gives an empty name for this event")
        }
        topic.append(0)
        key.removeAll(keepingCapacity: true)
        if let template = config.key {
            template.render(fields, bytes, into: &key)
        } else if let range = fields.key, !JSONScanner(bytes).isNull(range) {
            key.append(contentsOf: bytes[range])
        }
        table.removeAll(keepingCapacity: true)
        if let schema = fields.schema, let name = fields.table {
            let scanner = JSONScanner(bytes)
            scanner.appendUnescaped(schema, into: &table)
            table.append(UInt8(ascii: "."))
            scanner.appendUnescaped(name, into: &table)
        }
        // The value: the body in the pipe's format (the event itself for native).
        var value = UnsafeRawBufferPointer(body)
        cloudEventHeaders.removeAll(keepingCapacity: true)
        if format == .cloudevents, config.contentMode == .binary {
            // Binary content mode (Kafka protocol binding): attributes as ce_ headers, data as the value.
            let cloudEvent = CloudEventFields.scan(body, event: 0..<body.count)
            for attribute in cloudEvent.attributes {
                var text: [UInt8] = []
                JSONScanner(body).appendUnescaped(attribute.value, into: &text)
                cloudEventHeaders.append(
                    (Array(("ce_" + String(decoding: body[attribute.name], as: UTF8.self)).utf8CString), text))
            }
            if let data = cloudEvent.data { value = UnsafeRawBufferPointer(rebasing: value[data]) }
        }
        let contentType: [UInt8]? =
            format != .cloudevents
            ? nil : (config.contentMode == .binary ? Self.jsonContentType : Self.structuredContentType)
        let cloudEventHeaders = cloudEventHeaders
        let id = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[fields.id ?? 0..<0]))
        let op = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[fields.op ?? 0..<0]))
        let topic = topic
        return key.withUnsafeBytes { key in
            table.withUnsafeBytes { table in
                builder.produce(
                    producer, topics, topic: topic, key: key.count > 0 ? key : nil, value: value, opaque: opaque
                ) { headers in
                    headers.add(Self.idHeader, id)
                    headers.add(Self.opHeader, op)
                    for (name, text) in cloudEventHeaders {
                        text.withUnsafeBytes { headers.add(name, $0) }
                    }
                    if let contentType { contentType.withUnsafeBytes { headers.add(Self.contentTypeHeader, $0) } }
                    if table.count > 0 { headers.add(Self.tableHeader, table) }
                }
            }
        }
    }
}

extension KafkaSink {
    /// Asks the cluster for its brokers (see `KafkaProducer.checkBrokers`).
    public func checkBrokers() async throws { try await producer.checkBrokers() }
}
