import BridgeCore
import CRdKafka
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
            producer.produceQueue.async { [self] in
                produce(batches, tracker: tracker, trackerID: trackerID)
            }
        }
    }

    /// Runs on the producer's queue.
    private func produce(_ batches: [EventBatch], tracker: KafkaDeliveryTracker, trackerID: UInt32) {
        let total = batches.reduce(0) { $0 + $1.eventCount }
        let rk: OpaquePointer
        do {
            try producer.replaceIfFatal(keeping: trackerID)
            try producer.createHandleIfNeeded()
            guard let handle = producer.handle else { throw SinkError(sink: description, message: "producer closed") }
            rk = handle
        } catch {
            tracker.abandon(count: total, reason: "\(error)")
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
                    rk, producer, fields, bytes, body: body, topic: topic,
                    opaque: UnsafeMutableRawPointer(bitPattern: token))
                {
                    tracker.failed(index, code: failure.code, reason: failure.reason)
                }
                index += 1
            }
        }
    }
}

/// Builds and produces one message at a time from reused buffers.
struct KafkaMessageWriter {
    let config: KafkaSinkConfig
    private var topic: [UInt8] = []
    private var key: [UInt8] = []
    private var table: [UInt8] = []
    private var values = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 8)

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
        _ rk: OpaquePointer, _ producer: KafkaProducer, _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>,
        body: UnsafeBufferPointer<UInt8>, topic template: NameTemplate, opaque: UnsafeMutableRawPointer?
    ) -> (code: rd_kafka_resp_err_t, reason: String)? {
        topic.removeAll(keepingCapacity: true)
        template.render(fields, bytes, into: &topic)
        guard !topic.isEmpty else {
            return (
                RD_KAFKA_RESP_ERR__INVALID_ARG, "the topic template \(template) gives an empty name for this event"
            )
        }
        topic.append(0)
        guard let topicHandle = producer.topicHandle(topic, rk) else {
            return (RD_KAFKA_RESP_ERR__INVALID_ARG, "cannot create a handle for this topic name")
        }
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
        let base = bytes.baseAddress!
        // The value: the body in the pipe's format (the event itself for native).
        var valueStart = body.baseAddress!
        var valueCount = body.count
        cloudEventHeaders.removeAll(keepingCapacity: true)
        if format == .cloudevents, config.contentMode == .binary {
            // Binary content mode (Kafka protocol binding): attributes as ce_ headers, data as the value.
            let cloudEvent = CloudEventFields.scan(body, event: 0..<body.count)
            for attribute in cloudEvent.attributes {
                var value: [UInt8] = []
                JSONScanner(body).appendUnescaped(attribute.value, into: &value)
                cloudEventHeaders.append(
                    (Array(("ce_" + String(decoding: body[attribute.name], as: UTF8.self)).utf8CString), value))
            }
            if let data = cloudEvent.data {
                valueStart = body.baseAddress! + data.lowerBound
                valueCount = data.count
            }
        }
        let contentType: [UInt8]? =
            format != .cloudevents
            ? nil : (config.contentMode == .binary ? Self.jsonContentType : Self.structuredContentType)
        let cloudEventHeaders = cloudEventHeaders
        let id = fields.id ?? 0..<0
        let op = fields.op ?? 0..<0
        let hasKey = !key.isEmpty
        let hasTable = !table.isEmpty
        let error: OpaquePointer? = topic.withUnsafeBufferPointer { topicBytes in
            key.withUnsafeBufferPointer { keyBytes in
                table.withUnsafeBufferPointer { tableBytes in
                    Self.idHeader.withUnsafeBufferPointer { idName in
                        Self.opHeader.withUnsafeBufferPointer { opName in
                            Self.tableHeader.withUnsafeBufferPointer { tableName in
                                var count = 0
                                func add(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
                                    values[count].vtype = type
                                    fill(&values[count])
                                    count += 1
                                }
                                add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topicHandle }
                                add(RD_KAFKA_VTYPE_VALUE) {
                                    $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: valueStart)
                                    $0.u.mem.size = valueCount
                                }
                                if hasKey {
                                    add(RD_KAFKA_VTYPE_KEY) {
                                        $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: keyBytes.baseAddress!)
                                        $0.u.mem.size = keyBytes.count
                                    }
                                }
                                add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
                                add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_BLOCK }
                                // Headers owned by us until produceva succeeds: librdkafka
                                // 2.0's own VTYPE_HEADER list is freed twice on some errors
                                // (confluentinc/librdkafka#4627).
                                let headers = rd_kafka_headers_new(3)!
                                rd_kafka_header_add(headers, idName.baseAddress, -1, base + id.lowerBound, id.count)
                                rd_kafka_header_add(headers, opName.baseAddress, -1, base + op.lowerBound, op.count)
                                for (name, value) in cloudEventHeaders {
                                    rd_kafka_header_add(headers, name, -1, value, value.count)
                                }
                                if let contentType {
                                    rd_kafka_header_add(
                                        headers, Self.contentTypeHeader, -1, contentType, contentType.count)
                                }
                                if hasTable {
                                    rd_kafka_header_add(
                                        headers, tableName.baseAddress, -1, tableBytes.baseAddress, tableBytes.count)
                                }
                                add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers }
                                let error = values.withUnsafeBufferPointer {
                                    rd_kafka_produceva(rk, $0.baseAddress, count)
                                }
                                if error != nil { rd_kafka_headers_destroy(headers) }
                                return error
                            }
                        }
                    }
                }
            }
        }
        guard let error else { return nil }
        defer { rd_kafka_error_destroy(error) }
        return (rd_kafka_error_code(error), String(cString: rd_kafka_error_string(error)))
    }
}

extension KafkaSink {
    /// Asks the cluster for its brokers (librdkafka connects lazily; `pgbridge check` needs an
    /// answer now).
    public func checkBrokers() async throws {
        let producer = producer
        try await producer.onProduceQueue {
            try producer.createHandleIfNeeded()
            guard let rk = producer.handle else { throw SinkError(sink: producer.description, message: "no producer") }
            var metadata: UnsafePointer<rd_kafka_metadata_t>?
            let err = rd_kafka_metadata(rk, 0, nil, &metadata, 10_000)
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw SinkError(
                    sink: producer.description,
                    message:
                        "cannot reach the brokers: \(String(cString: rd_kafka_err2str(err))); check brokers, TLS and SASL settings"
                )
            }
        }
    }
}
