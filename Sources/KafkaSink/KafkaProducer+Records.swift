import BridgeCore
import CRdKafka

/// A message written through SQL (INSERT into a `kafka.<topic>` table).
public struct KafkaRecord: Sendable {
    public var topic: String
    /// nil = the partitioner picks (by key).
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [(String, [UInt8])]
    /// Milliseconds since 1970; nil = now.
    public var timestamp: Int64?

    public init(
        topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]? = nil,
        headers: [(String, [UInt8])] = [], timestamp: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

extension KafkaProducer {
    /// Produces `records` and waits until the cluster confirmed every one; returns where each
    /// landed (partition, offset), in order. Any failed record fails the call.
    public func produce(_ records: [KafkaRecord]) async throws -> [(partition: Int32, offset: Int64)] {
        let tracker = KafkaDeliveryTracker(count: records.count, sink: description)
        let trackerID = register(tracker)
        defer { unregister(trackerID) }
        let result = try await withCheckedThrowingContinuation { continuation in
            tracker.start(continuation)
            produceQueue.async { [self] in
                produceRecords(records, tracker: tracker, trackerID: trackerID)
            }
        }
        if let rejection = result.rejected.first {
            throw SinkError(sink: description, message: rejection.reason, retriable: false)
        }
        return tracker.positions
    }

    /// Runs on the produce queue.
    private func produceRecords(_ records: [KafkaRecord], tracker: KafkaDeliveryTracker, trackerID: UInt32) {
        let rk: OpaquePointer
        do {
            try createHandleIfNeeded()
            guard let handle else { throw SinkError(sink: description, message: "producer closed") }
            rk = handle
        } catch {
            tracker.abandon(count: records.count, reason: "\(error)")
            return
        }
        var values = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 8)
        for (index, record) in records.enumerated() {
            let token = UInt(trackerID) << 32 | UInt(UInt32(truncatingIfNeeded: index))
            guard let topicHandle = topicHandle(Array(record.topic.utf8) + [0], rk) else {
                tracker.failed(index, code: RD_KAFKA_RESP_ERR__INVALID_ARG, reason: "invalid topic name")
                continue
            }
            let headers = rd_kafka_headers_new(record.headers.count)!
            for (name, value) in record.headers {
                rd_kafka_header_add(headers, name, -1, value, value.count)
            }
            let key = record.key ?? []
            let value = record.value ?? []
            let error: OpaquePointer? = key.withUnsafeBufferPointer { keyBytes in
                value.withUnsafeBufferPointer { valueBytes in
                    var count = 0
                    func add(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
                        values[count] = rd_kafka_vu_t()
                        values[count].vtype = type
                        fill(&values[count])
                        count += 1
                    }
                    add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topicHandle }
                    if record.value != nil {
                        add(RD_KAFKA_VTYPE_VALUE) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: valueBytes.baseAddress)
                            $0.u.mem.size = valueBytes.count
                        }
                    }
                    if record.key != nil {
                        add(RD_KAFKA_VTYPE_KEY) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: keyBytes.baseAddress)
                            $0.u.mem.size = keyBytes.count
                        }
                    }
                    if let partition = record.partition { add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition } }
                    if let timestamp = record.timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp } }
                    add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(bitPattern: token) }
                    add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_BLOCK }
                    add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers }
                    return values.withUnsafeBufferPointer { rd_kafka_produceva(rk, $0.baseAddress, count) }
                }
            }
            if let error {
                rd_kafka_headers_destroy(headers)
                tracker.failed(
                    index, code: rd_kafka_error_code(error), reason: String(cString: rd_kafka_error_string(error)))
                rd_kafka_error_destroy(error)
            }
        }
    }
}
