import BridgeCore
import CRdKafka
import Logging

/// A librdkafka consumer: assigned to partitions by hand for bounded reads such as the wire
/// protocol's table scans, or a member of a consumer group (see `KafkaConsumer+Group.swift`).
/// Not thread-safe: its owner calls it from one queue, and calls may block.
public final class KafkaConsumer {
    private var rk: OpaquePointer?
    /// After `pauseAssigned(false)`: when the resume was last repeated, and the polls since the
    /// clock was last read (see `resumeAgainIfDue`).
    var resumedAt: ContinuousClock.Instant?
    var pollsSinceResumeCheck = 0
    public let description: String
    /// Where librdkafka's log lines go (served on the polling thread); kept alive here because
    /// the handle refers to it.
    private let logs: LogSink?

    /// librdkafka's log lines, at pgbridge's levels (errors, warnings; the rest at debug).
    final class LogSink {
        let logger: Logger
        let description: String

        init(logger: Logger, description: String) {
            self.logger = logger
            self.description = description
        }

        func log(level: Int32, facility: String, text: String) {
            let message = "\(description): librdkafka \(facility): \(text)"
            switch level {
            case ...3: logger.error("\(message)")
            case 4: logger.warning("\(message)")
            default: logger.debug("\(message)")
            }
        }
    }

    /// What `poll` found.
    public enum Polled {
        /// Nothing within the timeout.
        case nothing
        /// A message; valid only inside `poll`'s body.
        case message(KafkaReceivedMessage)
        /// The partition's end (with `enable.partition.eof`).
        case partitionEnd(partition: Int32)
        /// A connection-level event librdkafka retries by itself (a broker reconnecting, a
        /// subscribed topic that does not exist yet), with what librdkafka said.
        case transient(String)
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// A consumer from the Kafka settings of `config` (brokers, security, properties) plus
    /// `properties`.
    /// With `logger`, librdkafka's log lines go to it instead of standard error.
    public init(config: KafkaSinkConfig, properties: [(String, String)], description: String, logger: Logger? = nil)
        throws(Failure)
    {
        self.description = description
        logs = logger.map { LogSink(logger: $0, description: description) }
        let conf: OpaquePointer
        do throws(KafkaSinkConfig.RejectedProperty) {
            conf = try config.librdkafkaConfiguration(
                [("bootstrap.servers", config.brokers), ("client.id", config.clientID)] + properties
                    + (logs == nil ? [] : [("log.queue", "true")]))
        } catch {
            throw Failure(description: "\(description): librdkafka rejected property \(error.name): \(error.reason)")
        }
        if let logs {
            rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(logs).toOpaque())
            rd_kafka_conf_set_log_cb(conf) { rk, level, facility, text in
                guard let rk, let opaque = rd_kafka_opaque(rk), let text else { return }
                Unmanaged<LogSink>.fromOpaque(opaque).takeUnretainedValue().log(
                    level: level, facility: facility.map { String(cString: $0) } ?? "", text: String(cString: text))
            }
        }
        var error = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &error, error.count) else {
            rd_kafka_conf_destroy(conf)
            throw Failure(description: "\(description): cannot create a consumer: \(cString(error))")
        }
        // Log lines are queued and served by the consumer's polls (on its owner's thread).
        if logs != nil { rd_kafka_set_log_queue(rk, nil) }
        rd_kafka_poll_set_consumer(rk)
        self.rk = rk
    }

    deinit { close() }

    /// Destroys the handle (this can block while librdkafka closes its connections).
    public func close() {
        abandon(leaving: false)
    }

    /// Destroys the handle; with `leaving`, without the consumer close (which a group member
    /// that could not leave in time would wait for).
    func abandon(leaving: Bool) {
        if let rk {
            if leaving {
                rd_kafka_destroy_flags(rk, Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE))
            } else {
                rd_kafka_destroy(rk)
            }
        }
        rk = nil
    }

    func handle() throws(Failure) -> OpaquePointer {
        guard let rk else { throw Failure(description: "\(description): the consumer is closed") }
        return rk
    }

    /// The partitions of `topic`, sorted; none for a topic that does not exist.
    public func partitions(of topic: String) throws(Failure) -> [Int32] {
        let rk = try handle()
        guard let topicHandle = rd_kafka_topic_new(rk, topic, nil) else { return [] }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(rk, 0, topicHandle, &metadata, 10_000)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw Failure(
                description:
                    "\(description): cannot read the metadata of topic \(topic): \(String(cString: rd_kafka_err2str(error))). Is Kafka reachable?"
            )
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var partitions: [Int32] = []
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let entry = metadata.pointee.topics[index]
            guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            for partition in 0..<Int(entry.partition_cnt) { partitions.append(entry.partitions[partition].id) }
        }
        return partitions.sorted()
    }

    /// The low and high watermarks of a partition.
    public func watermarks(_ topic: String, partition: Int32) throws(Failure) -> (low: Int64, high: Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        let error = rd_kafka_query_watermark_offsets(try handle(), topic, partition, &low, &high, 10_000)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw Failure(
                description:
                    "\(description): cannot read the offsets of \(topic)[\(partition)]: \(String(cString: rd_kafka_err2str(error)))"
            )
        }
        return (low, high)
    }

    /// The first offset at or after `milliseconds` per partition (offsets-for-times);
    /// `Int64.max` where no message is that recent; empty when the lookup fails.
    public func offsets(_ topic: String, partitions: [Int32], atOrAfter milliseconds: Int64) throws(Failure)
        -> [Int32: Int64]
    {
        let rk = try handle()
        guard !partitions.isEmpty else { return [:] }
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in partitions {
            rd_kafka_topic_partition_list_add(list, topic, partition)!.pointee.offset = milliseconds
        }
        guard rd_kafka_offsets_for_times(rk, list, 10_000) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [:] }
        var offsets: [Int32: Int64] = [:]
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            if element.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                offsets[element.partition] = element.offset >= 0 ? element.offset : Int64.max
            }
        }
        return offsets
    }

    /// Reads `topic`'s partitions from the given offsets.
    public func assign(_ topic: String, from starts: [(partition: Int32, offset: Int64)]) throws(Failure) {
        let rk = try handle()
        guard !starts.isEmpty else { return }
        let assignment = rd_kafka_topic_partition_list_new(Int32(starts.count))!
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        for start in starts {
            rd_kafka_topic_partition_list_add(assignment, topic, start.partition)!.pointee.offset = start.offset
        }
        let error = rd_kafka_assign(rk, assignment)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw Failure(
                description: "\(description): cannot assign \(topic): \(String(cString: rd_kafka_err2str(error)))")
        }
    }

    /// Waits up to `timeoutMilliseconds` for the next message or event and gives it to `body`.
    public func poll<T>(timeoutMilliseconds: Int32, _ body: (Polled) throws -> T) throws -> T {
        if resumedAt != nil { try resumeAgainIfDue() }
        guard let message = rd_kafka_consumer_poll(try handle(), timeoutMilliseconds) else {
            return try body(.nothing)
        }
        defer { rd_kafka_message_destroy(message) }
        let partition = message.pointee.partition
        let error = message.pointee.err
        if error == RD_KAFKA_RESP_ERR__PARTITION_EOF { return try body(.partitionEnd(partition: partition)) }
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let text = Self.errorText(message)
            // A fatal error or a refused authorization is not retried by librdkafka: the
            // owner reconnects (with backoff) and says why.
            if error == RD_KAFKA_RESP_ERR__FATAL || error == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
                || error == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED
            {
                throw Failure(description: "\(description): \(text)")
            }
            // Connection-level events are not the partition's error: librdkafka retries them.
            if partition < 0 || KafkaErrorKind(error) == .unavailable { return try body(.transient(text)) }
            throw Failure(description: "\(description): reading: \(text)")
        }
        return try body(.message(KafkaReceivedMessage(pointer: message)))
    }
}

extension KafkaConsumer {
    /// What an error message of `rd_kafka_consumer_poll` says (its payload, else the code's text).
    static func errorText(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> String {
        if let payload = message.pointee.payload, message.pointee.len > 0 {
            return String(decoding: UnsafeRawBufferPointer(start: payload, count: message.pointee.len), as: UTF8.self)
        }
        return String(cString: rd_kafka_err2str(message.pointee.err))
    }
}

/// A message as librdkafka delivered it, read in place (valid only inside `KafkaConsumer.poll`).
public struct KafkaReceivedMessage {
    let pointer: UnsafeMutablePointer<rd_kafka_message_t>

    public var partition: Int32 { pointer.pointee.partition }
    public var offset: Int64 { pointer.pointee.offset }
    public var key: UnsafeRawBufferPointer? {
        pointer.pointee.key.map { UnsafeRawBufferPointer(start: $0, count: pointer.pointee.key_len) }
    }
    public var payload: UnsafeRawBufferPointer? {
        pointer.pointee.payload.map { UnsafeRawBufferPointer(start: $0, count: pointer.pointee.len) }
    }

    /// Milliseconds since 1970, or nil when the message has no timestamp.
    public var timestampMilliseconds: Int64? {
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let milliseconds = rd_kafka_message_timestamp(pointer, &type)
        return type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : milliseconds
    }

    /// Each header's name and value (nil for a header without a value), in order.
    public func forEachHeader(_ body: (String, UnsafeRawBufferPointer?) -> Void) {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return }
        var index = 0
        var name: UnsafePointer<CChar>?
        var data: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &data, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            body(name.map { String(cString: $0) } ?? "", data.map { UnsafeRawBufferPointer(start: $0, count: size) })
            index += 1
        }
    }
}
