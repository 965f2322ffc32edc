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
            produce.enqueue { [self] topics in
                produceRecords(records, topics, tracker: tracker, trackerID: trackerID)
            }
        }
        if let rejection = result.rejected.first {
            throw SinkError(sink: description, message: rejection.reason, retriable: false)
        }
        return tracker.positions
    }

    /// Runs on the produce queue.
    private func produceRecords(
        _ records: [KafkaRecord], _ topics: TopicHandles, tracker: KafkaDeliveryTracker, trackerID: UInt32
    ) {
        do {
            try createHandleIfNeeded()
            guard handle != nil else { throw SinkError(sink: description, message: "producer closed") }
        } catch {
            tracker.abandon(count: records.count, reason: "\(error)")
            return
        }
        var builder = KafkaMessageBuilder()
        for (index, record) in records.enumerated() {
            let token = UInt(trackerID) << 32 | UInt(UInt32(truncatingIfNeeded: index))
            let failure = withOptionalBytes(record.key) { key in
                withOptionalBytes(record.value) { value in
                    builder.produce(
                        self, topics, topic: Array(record.topic.utf8) + [0], key: key, value: value,
                        partition: record.partition, timestamp: record.timestamp,
                        opaque: UnsafeMutableRawPointer(bitPattern: token)
                    ) { headers in
                        for (name, value) in record.headers { value.withUnsafeBytes { headers.add(name, $0) } }
                    }
                }
            }
            if let failure { tracker.failed(index, failure) }
        }
    }
}

/// `body` with the bytes of `array`, or nil when there is no array.
private func withOptionalBytes<T>(_ array: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> T) -> T {
    guard let array else { return body(nil) }
    return array.withUnsafeBytes { body($0) }
}
