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

    public init(config: KafkaSinkConfig, producer: KafkaProducer, logger: Logger) {
        self.config = config
        self.producer = producer
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
            try producer.replaceIfFatal()
            try producer.createHandleIfNeeded()
            guard let handle = producer.handle else { throw SinkError(sink: description, message: "producer closed") }
            rk = handle
        } catch {
            tracker.abandon(count: total, reason: "\(error)")
            return
        }
        var writer = KafkaMessageWriter(config: config)
        var index = 0
        for batch in batches {
            batch.forEachEvent { bytes, _, fields in
                let token = UInt(trackerID) << 32 | UInt(UInt32(truncatingIfNeeded: index))
                if let failure = writer.produce(rk, fields, bytes, opaque: UnsafeMutableRawPointer(bitPattern: token)) {
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

    init(config: KafkaSinkConfig) {
        self.config = config
    }

    /// Produces one message (copied by librdkafka; blocks while its queue is full).
    mutating func produce(
        _ rk: OpaquePointer, _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>,
        opaque: UnsafeMutableRawPointer?
    ) -> (code: rd_kafka_resp_err_t, reason: String)? {
        topic.removeAll(keepingCapacity: true)
        config.topic.render(fields, bytes, into: &topic)
        guard !topic.isEmpty else {
            return (
                RD_KAFKA_RESP_ERR__INVALID_ARG, "the topic template \(config.topic) gives an empty name for this event"
            )
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
        let base = bytes.baseAddress!
        let event = fields.event
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
                                add(RD_KAFKA_VTYPE_TOPIC) {
                                    $0.u.cstr = UnsafeRawPointer(topicBytes.baseAddress!).assumingMemoryBound(
                                        to: CChar.self)
                                }
                                add(RD_KAFKA_VTYPE_VALUE) {
                                    $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: base + event.lowerBound)
                                    $0.u.mem.size = event.count
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
