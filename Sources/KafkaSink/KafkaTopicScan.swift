import BridgeCore
import CRdKafka
import Dispatch
import Foundation
import WireProtocol

extension Int64 {
    /// `self + 1`, or `Int64.max` at the top.
    var saturatingSuccessor: Int64 { self == .max ? .max : self + 1 }
}

/// One bounded read of a topic: a consumer assigned to the partitions (no group, no commits),
/// starting where the WHERE clause's offset and time bounds allow and stopping at each
/// partition's high watermark as it was when the scan started.
final class KafkaTopicScan: ForeignScan, @unchecked Sendable {
    // @unchecked Sendable: `consumer` and `remaining` are only touched on `queue`.
    private let queue = DispatchQueue(label: "pgbridge.wire.kafka.scan")
    private var consumer: OpaquePointer?
    /// Partition → the offset the scan stops before.
    private var remaining: [Int32: Int64] = [:]
    private let topic: WireKafkaTopic
    private let description: String
    private let maxRows: Int
    /// Which of key, value and headers the query uses (the others stay NULL, undecoded).
    private var decodeKey = true
    private var decodeValue = true
    private var decodeHeaders = true
    private var rowsRead = 0
    private var lastProgress = ContinuousClock.now
    static let batchSize = 500
    static let timeout: Duration = .seconds(30)

    init(topic: WireKafkaTopic, description: String, maxRows: Int) {
        self.topic = topic
        self.description = description
        self.maxRows = maxRows
    }

    deinit {
        // Normally closed by `close()`. Destroying can block: never on the caller's thread.
        guard let consumer else { return }
        let address = UInt(bitPattern: consumer)
        queue.async { rd_kafka_destroy(OpaquePointer(bitPattern: address)) }
    }

    /// Finds the partitions, their watermarks and start offsets, and assigns them.
    func open(config: KafkaSinkConfig, request: ScanRequest) async throws {
        try await queue.perform { [self] in
            decodeKey = request.columns.contains("key")
            decodeValue = request.columns.contains("value")
            decodeHeaders = request.columns.contains("headers")
            let rk = try makeConsumer(config)
            consumer = rk
            let partitions = try partitionIDs(rk).filter { Self.partition($0, matches: request.bounds["partition"]) }
            let assignment = rd_kafka_topic_partition_list_new(Int32(max(1, partitions.count)))!
            defer { rd_kafka_topic_partition_list_destroy(assignment) }
            let startTimes = try startOffsetsForTime(rk, partitions, request.bounds["timestamp"])
            for partition in partitions {
                var low: Int64 = 0
                var high: Int64 = 0
                let error = rd_kafka_query_watermark_offsets(rk, topic.name, partition, &low, &high, 10_000)
                guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw WireError(
                        "58000",
                        "\(description): cannot read the offsets of \(topic.name)[\(partition)]: "
                            + String(cString: rd_kafka_err2str(error)))
                }
                var start = max(low, startTimes[partition] ?? low)
                var end = high
                if let bounds = request.bounds["offset"] {
                    if case .int(let lower) = bounds.lower {
                        start = max(start, bounds.lowerInclusive ? lower : lower.saturatingSuccessor)
                    }
                    if case .int(let upper) = bounds.upper {
                        end = min(end, bounds.upperInclusive ? upper.saturatingSuccessor : upper)
                    }
                    if let values = bounds.values {
                        let offsets = values.compactMap { if case .int(let v) = $0 { v } else { nil } }
                        if let first = offsets.min(), let last = offsets.max() {
                            start = max(start, first)
                            end = min(end, last.saturatingSuccessor)
                        }
                    }
                }
                guard start < end else { continue }
                remaining[partition] = end
                let element = rd_kafka_topic_partition_list_add(assignment, topic.name, partition)!
                element.pointee.offset = start
            }
            if !remaining.isEmpty {
                let error = rd_kafka_assign(rk, assignment)
                guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw WireError(
                        "58000",
                        "\(description): cannot assign \(topic.name): \(String(cString: rd_kafka_err2str(error)))")
                }
            }
        }
    }

    func next() async throws -> [[SQLValue]]? {
        try await queue.perform { [self] () throws -> [[SQLValue]]? in
            guard let rk = consumer, !remaining.isEmpty else { return nil }
            guard rowsRead < maxRows else {
                throw WireError(
                    "54000", "the scan of Kafka topic \(topic.name) passed max_scan_rows (\(maxRows)) rows",
                    hint: "add a condition on partition, \"offset\" or \"timestamp\", or raise wire.max_scan_rows")
            }
            var rows: [[SQLValue]] = []
            let batchStart = ContinuousClock.now
            while rows.count < Self.batchSize, !remaining.isEmpty {
                guard let message = rd_kafka_consumer_poll(rk, 100) else {
                    if ContinuousClock.now - lastProgress > Self.timeout {
                        throw WireError(
                            "58000",
                            "\(description): no message from \(topic.name) in \(Self.timeout) while \(remaining.count) partitions were not read to their end"
                        )
                    }
                    // Return what there is (or an empty batch after a second), so that the
                    // statement can be cancelled while Kafka is slow.
                    if !rows.isEmpty || ContinuousClock.now - batchStart > .seconds(1) { break }
                    continue
                }
                defer { rd_kafka_message_destroy(message) }
                let partition = message.pointee.partition
                let offset = message.pointee.offset
                let error = message.pointee.err
                if error == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    remaining[partition] = nil
                    continue
                }
                guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    // Connection-level events (a broker reconnecting) are not the partition's
                    // error: librdkafka retries them; the progress timeout bounds the wait.
                    if partition < 0 || KafkaErrorKind(error) == .unavailable { continue }
                    throw WireError(
                        "58000", "\(description): reading \(topic.name): \(String(cString: rd_kafka_err2str(error)))")
                }
                guard let end = remaining[partition] else { continue }
                if offset >= end {
                    remaining[partition] = nil
                    continue
                }
                rows.append(row(message))
                rowsRead += 1
                lastProgress = ContinuousClock.now
                if offset + 1 >= end { remaining[partition] = nil }
            }
            return rows
        }
    }

    func close() async {
        try? await queue.perform { [self] in
            if let consumer {
                rd_kafka_destroy(consumer)
                self.consumer = nil
            }
        }
    }

    // MARK: - Pieces

    /// One row of a message. `pointer` must be librdkafka's own message (timestamp and headers
    /// are found from its address, not from a copy).
    private func row(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>) -> [SQLValue] {
        let message = pointer.pointee
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let milliseconds = rd_kafka_message_timestamp(pointer, &type)
        let key: SQLValue =
            !decodeKey
            ? .null
            : message.key.map {
                .text(String(decoding: UnsafeRawBufferPointer(start: $0, count: message.key_len), as: UTF8.self))
            } ?? .null
        var value = SQLValue.null
        if decodeValue, let payload = message.payload {
            let text = String(decoding: UnsafeRawBufferPointer(start: payload, count: message.len), as: UTF8.self)
            switch topic.value {
            case .text: value = .text(text)
            case .json: value = .json(JSONValue(parsing: text) ?? .string(text))
            }
        }
        var headers: [(String, JSONValue)] = []
        var list: OpaquePointer?
        if decodeHeaders, rd_kafka_message_headers(pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
            var index = 0
            var name: UnsafePointer<CChar>?
            var data: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(list, index, &name, &data, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let text = data.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: size), as: UTF8.self) }
                headers.append((name.map { String(cString: $0) } ?? "", text.map(JSONValue.string) ?? .null))
                index += 1
            }
        }
        return [
            .int(Int64(message.partition)), .int(message.offset),
            Self.timestamp(milliseconds), key, value, decodeHeaders ? .json(.object(headers)) : .null,
        ]
    }

    private func makeConsumer(_ config: KafkaSinkConfig) throws -> OpaquePointer {
        let conf: OpaquePointer
        do throws(KafkaSinkConfig.RejectedProperty) {
            conf = try config.librdkafkaConfiguration([
                ("bootstrap.servers", config.brokers),
                ("client.id", config.clientID),
                ("group.id", "pgbridge-wire"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "true"),
                ("log.queue", "true"),
            ])
        } catch {
            throw WireError("58000", "\(description): librdkafka rejected property \(error.name): \(error.reason)")
        }
        var error = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &error, error.count) else {
            rd_kafka_conf_destroy(conf)
            throw WireError("58000", "\(description): cannot create a consumer: \(cString(error))")
        }
        rd_kafka_poll_set_consumer(rk)
        return rk
    }

    private func partitionIDs(_ rk: OpaquePointer) throws -> [Int32] {
        guard let handle = rd_kafka_topic_new(rk, topic.name, nil) else { return [] }
        defer { rd_kafka_topic_destroy(handle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(rk, 0, handle, &metadata, 10_000)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw WireError(
                "58000",
                "\(description): cannot read the metadata of topic \(topic.name): \(String(cString: rd_kafka_err2str(error))). Is Kafka reachable?"
            )
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var partitions: [Int32] = []
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let entry = metadata.pointee.topics[index]
            // A topic that does not exist yet has no rows.
            guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            for partition in 0..<Int(entry.partition_cnt) { partitions.append(entry.partitions[partition].id) }
        }
        return partitions.sorted()
    }

    /// The first offset at or after the lower time bound, per partition (offsets-for-times).
    private func startOffsetsForTime(_ rk: OpaquePointer, _ partitions: [Int32], _ bounds: ColumnBounds?) throws
        -> [Int32: Int64]
    {
        guard case .timestamp(let micros) = bounds?.lower, micros > 0, !partitions.isEmpty else { return [:] }
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in partitions {
            rd_kafka_topic_partition_list_add(list, topic.name, partition)!.pointee.offset = micros / 1000
        }
        guard rd_kafka_offsets_for_times(rk, list, 10_000) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [:] }
        var offsets: [Int32: Int64] = [:]
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            // -1: no message at or after that time (the scan then reads nothing of it).
            if element.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                offsets[element.partition] = element.offset >= 0 ? element.offset : Int64.max
            }
        }
        return offsets
    }

    /// A message time (milliseconds since 1970) as a value; NULL when absent or out of range.
    static func timestamp(_ milliseconds: Int64) -> SQLValue {
        guard milliseconds >= 0 else { return .null }
        let (micros, overflow) = milliseconds.multipliedReportingOverflow(by: 1000)
        return overflow || micros == Int64.max ? .null : .timestamp(micros)
    }

    static func partition(_ partition: Int32, matches bounds: ColumnBounds?) -> Bool {
        guard let bounds else { return true }
        let value = SQLValue.int(Int64(partition))
        if let values = bounds.values, !values.contains(where: { (try? SQLValue.compare($0, value)) == 0 }) {
            return false
        }
        if let lower = bounds.lower, let order = try? SQLValue.compare(value, lower),
            order < 0 || (order == 0 && !bounds.lowerInclusive)
        {
            return false
        }
        if let upper = bounds.upper, let order = try? SQLValue.compare(value, upper),
            order > 0 || (order == 0 && !bounds.upperInclusive)
        {
            return false
        }
        return true
    }
}
