import BridgeCore
import CRdKafka

/// Why librdkafka did not take a message (or the caller could not build one).
public struct KafkaProduceFailure: Error, Sendable {
    let code: rd_kafka_resp_err_t
    public let reason: String

    init(code: rd_kafka_resp_err_t, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// A message that cannot be built (an empty topic name …): never retried.
    public static func invalid(_ reason: String) -> KafkaProduceFailure {
        KafkaProduceFailure(code: RD_KAFKA_RESP_ERR__INVALID_ARG, reason: reason)
    }
}

/// The headers of the message being built; valid only inside `KafkaMessageBuilder.produce`.
public struct KafkaHeaders {
    fileprivate let list: OpaquePointer

    /// Adds a header (`name` NUL-terminated, the value copied).
    public func add(_ name: UnsafePointer<CChar>, _ value: UnsafeRawBufferPointer) {
        rd_kafka_header_add(list, name, -1, value.baseAddress, value.count)
    }
}

/// Produces one message at a time through `rd_kafka_produceva`, from reused buffers: the one
/// place a message is put together for librdkafka. Use on the producer's queue only.
public struct KafkaMessageBuilder {
    private var values = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 8)
    private var count = 0

    public init() {}

    private mutating func add(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
        values[count] = rd_kafka_vu_t()
        values[count].vtype = type
        fill(&values[count])
        count += 1
    }

    /// Produces one message (copied by librdkafka; blocks while its queue is full). `topic` is
    /// the name, NUL-terminated; a nil key or value is absent (a nil value is a tombstone); no
    /// partition lets the partitioner choose; `opaque` comes back with the delivery report.
    public mutating func produce(
        _ producer: KafkaProducer, _ topics: KafkaProducer.TopicHandles, topic: [UInt8], key: UnsafeRawBufferPointer?,
        value: UnsafeRawBufferPointer?,
        partition: Int32? = nil, timestamp: Int64? = nil, opaque: UnsafeMutableRawPointer?,
        headers fill: (KafkaHeaders) -> Void
    ) -> KafkaProduceFailure? {
        guard let rk = producer.handle else {
            return KafkaProduceFailure(code: RD_KAFKA_RESP_ERR__STATE, reason: "the producer is closed")
        }
        guard let topicHandle = producer.topicHandle(topic, rk, topics) else {
            return .invalid("cannot create a handle for this topic name")
        }
        count = 0
        add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topicHandle }
        if let value {
            add(RD_KAFKA_VTYPE_VALUE) {
                $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                $0.u.mem.size = value.count
            }
        }
        if let key {
            add(RD_KAFKA_VTYPE_KEY) {
                $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                $0.u.mem.size = key.count
            }
        }
        if let partition { add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition } }
        if let timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp } }
        add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
        add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_BLOCK }
        // Headers owned by us until produceva succeeds: librdkafka 2.0's own VTYPE_HEADER list
        // is freed twice on some errors (confluentinc/librdkafka#4627).
        let list = rd_kafka_headers_new(4)!
        fill(KafkaHeaders(list: list))
        add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = list }
        let count = count
        let error = values.withUnsafeBufferPointer { rd_kafka_produceva(rk, $0.baseAddress, count) }
        guard let error else { return nil }
        rd_kafka_headers_destroy(list)
        defer { rd_kafka_error_destroy(error) }
        return KafkaProduceFailure(
            code: rd_kafka_error_code(error), reason: String(cString: rd_kafka_error_string(error)))
    }
}

extension KafkaProducer {
    /// Makes sure a usable handle exists (a fatal one is replaced, failing the other deliveries
    /// that shared it); on the produce queue, before a delivery's messages.
    public func prepareHandle(keeping trackerID: UInt32, _ topics: TopicHandles) throws {
        try replaceIfFatal(keeping: trackerID, topics)
        try createHandleIfNeeded()
        guard handle != nil else { throw SinkError(sink: description, message: "producer closed") }
    }

    /// Runs `body` on the produce queue, without waiting for it.
    public func onProduceQueueAsync(_ body: @escaping @Sendable (TopicHandles) -> Void) {
        produce.enqueue(body)
    }

    /// Asks the cluster for its brokers (librdkafka connects lazily; `pgbridge check` needs an
    /// answer now).
    public func checkBrokers() async throws {
        try await onProduceQueue { [self] _ in
            try createHandleIfNeeded()
            guard let rk = handle else { throw SinkError(sink: description, message: "no producer") }
            var metadata: UnsafePointer<rd_kafka_metadata_t>?
            let err = rd_kafka_metadata(rk, 0, nil, &metadata, 10_000)
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw SinkError(
                    sink: description,
                    message:
                        "cannot reach the brokers: \(String(cString: rd_kafka_err2str(err))); check brokers, TLS and SASL settings"
                )
            }
        }
    }
}
