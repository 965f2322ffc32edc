import BridgeCore
import Foundation
import KafkaClient
import WireProtocol

extension Int64 {
    /// `self + 1`, or `Int64.max` at the top.
    var saturatingSuccessor: Int64 { self == .max ? .max : self + 1 }
}

/// One bounded read of a topic: a consumer assigned to the partitions (no group, no commits),
/// starting where the WHERE clause's offset and time bounds allow and stopping at each
/// partition's high watermark as it was when the scan started.
final class KafkaTopicScan: ForeignScan {
    /// The consumer and where the scan stands, confined to the scan's queue.
    final class Cursor {
        var consumer: KafkaConsumer?
        /// Partition → the offset the scan stops before.
        var remaining: [Int32: Int64] = [:]
        /// Which of key, value and headers the query uses (the others stay NULL, undecoded).
        var decodeKey = true
        var decodeValue = true
        var decodeHeaders = true
        var rowsRead = 0
        var lastProgress = ContinuousClock.now
    }

    private let cursor = Confined(Cursor(), label: "pgbridge.wire.kafka.scan")
    private let topic: WireKafkaTopic
    private let description: String
    private let maxRows: Int
    static let batchSize = 500
    static let timeout: Duration = .seconds(30)

    init(topic: WireKafkaTopic, description: String, maxRows: Int) {
        self.topic = topic
        self.description = description
        self.maxRows = maxRows
    }

    deinit {
        // Normally closed by `close()`. Destroying can block: never on the caller's thread.
        cursor.enqueue { $0.consumer?.close() }
    }

    /// Finds the partitions, their watermarks and start offsets, and assigns them.
    func open(config: KafkaSinkConfig, request: ScanRequest) async throws {
        try await cursor.run { [self] cursor in
            cursor.decodeKey = request.columns.contains("key")
            cursor.decodeValue = request.columns.contains("value")
            cursor.decodeHeaders = request.columns.contains("headers")
            do throws(KafkaConsumer.Failure) {
                let consumer = try KafkaConsumer(
                    config: config,
                    properties: [
                        ("group.id", "pgbridge-wire"), ("enable.auto.commit", "false"),
                        ("enable.auto.offset.store", "false"), ("enable.partition.eof", "true"), ("log.queue", "true"),
                    ], description: description)
                cursor.consumer = consumer
                let partitions = try consumer.partitions(of: topic.name).filter {
                    Self.partition($0, matches: request.bounds["partition"])
                }
                var startTimes: [Int32: Int64] = [:]
                if case .timestamp(let micros) = request.bounds["timestamp"]?.lower, micros > 0 {
                    startTimes = try consumer.offsets(topic.name, partitions: partitions, atOrAfter: micros / 1000)
                }
                var starts: [(partition: Int32, offset: Int64)] = []
                for partition in partitions {
                    let (low, high) = try consumer.watermarks(topic.name, partition: partition)
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
                    cursor.remaining[partition] = end
                    starts.append((partition, start))
                }
                try consumer.assign(topic.name, from: starts)
            } catch {
                throw WireError("58000", error.description)
            }
        }
    }

    func next() async throws -> [[SQLValue]]? {
        try await cursor.run { [self] cursor throws -> [[SQLValue]]? in
            guard let consumer = cursor.consumer, !cursor.remaining.isEmpty else { return nil }
            guard cursor.rowsRead < maxRows else {
                throw WireError(
                    "54000", "the scan of Kafka topic \(topic.name) passed max_scan_rows (\(maxRows)) rows",
                    hint: "add a condition on partition, \"offset\" or \"timestamp\", or raise wire.max_scan_rows")
            }
            var rows: [[SQLValue]] = []
            let batchStart = ContinuousClock.now
            polling: while rows.count < Self.batchSize, !cursor.remaining.isEmpty {
                let polled: KafkaConsumer.Polled
                do {
                    polled = try consumer.poll(timeoutMilliseconds: 100) { polled in
                        if case .message(let message) = polled, let end = cursor.remaining[message.partition] {
                            if message.offset >= end {
                                cursor.remaining[message.partition] = nil
                            } else {
                                rows.append(row(message, cursor))
                                cursor.rowsRead += 1
                                cursor.lastProgress = ContinuousClock.now
                                if message.offset + 1 >= end { cursor.remaining[message.partition] = nil }
                            }
                        }
                        return polled
                    }
                } catch {
                    throw WireError("58000", "\(error) (\(topic.name))")
                }
                switch polled {
                case .nothing:
                    if ContinuousClock.now - cursor.lastProgress > Self.timeout {
                        throw WireError(
                            "58000",
                            "\(description): no message from \(topic.name) in \(Self.timeout) while \(cursor.remaining.count) partitions were not read to their end"
                        )
                    }
                    // Return what there is (or an empty batch after a second), so that the
                    // statement can be cancelled while Kafka is slow.
                    if !rows.isEmpty || ContinuousClock.now - batchStart > .seconds(1) { break polling }
                case .partitionEnd(let partition): cursor.remaining[partition] = nil
                case .message, .transient: continue
                }
            }
            return rows
        }
    }

    func close() async {
        try? await cursor.run { cursor in
            cursor.consumer?.close()
            cursor.consumer = nil
        }
    }

    // MARK: - Pieces

    /// One row of a message, read in place.
    private func row(_ message: KafkaReceivedMessage, _ cursor: Cursor) -> [SQLValue] {
        let key: SQLValue =
            !cursor.decodeKey ? .null : message.key.map { .text(String(decoding: $0, as: UTF8.self)) } ?? .null
        var value = SQLValue.null
        if cursor.decodeValue, let payload = message.payload {
            let text = String(decoding: payload, as: UTF8.self)
            switch topic.value {
            case .text: value = .text(text)
            case .json: value = .json(JSONValue(parsing: text) ?? .string(text))
            }
        }
        var headers: [(String, JSONValue)] = []
        if cursor.decodeHeaders {
            message.forEachHeader { name, data in
                headers.append((name, data.map { .string(String(decoding: $0, as: UTF8.self)) } ?? .null))
            }
        }
        return [
            .int(Int64(message.partition)), .int(message.offset),
            message.timestampMilliseconds.map(Self.timestamp) ?? .null, key, value,
            cursor.decodeHeaders ? .json(.object(headers)) : .null,
        ]
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
