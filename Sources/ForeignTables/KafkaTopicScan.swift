import BridgeCore
import Dispatch
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
final class KafkaTopicScan: ForeignScan, @unchecked Sendable {
    // @unchecked Sendable: `consumer` and `remaining` are only touched on `queue`.
    private let queue = DispatchQueue(label: "pgbridge.wire.kafka.scan")
    private var consumer: KafkaConsumer?
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
        nonisolated(unsafe) let closing = consumer
        queue.async { closing.close() }
    }

    /// Finds the partitions, their watermarks and start offsets, and assigns them.
    func open(config: KafkaSinkConfig, request: ScanRequest) async throws {
        try await queue.perform { [self] in
            decodeKey = request.columns.contains("key")
            decodeValue = request.columns.contains("value")
            decodeHeaders = request.columns.contains("headers")
            do throws(KafkaConsumer.Failure) {
                let consumer = try KafkaConsumer(
                    config: config,
                    properties: [
                        ("group.id", "pgbridge-wire"), ("enable.auto.commit", "false"),
                        ("enable.auto.offset.store", "false"), ("enable.partition.eof", "true"), ("log.queue", "true"),
                    ], description: description)
                self.consumer = consumer
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
                    remaining[partition] = end
                    starts.append((partition, start))
                }
                try consumer.assign(topic.name, from: starts)
            } catch {
                throw WireError("58000", error.description)
            }
        }
    }

    func next() async throws -> [[SQLValue]]? {
        try await queue.perform { [self] () throws -> [[SQLValue]]? in
            guard let consumer, !remaining.isEmpty else { return nil }
            guard rowsRead < maxRows else {
                throw WireError(
                    "54000", "the scan of Kafka topic \(topic.name) passed max_scan_rows (\(maxRows)) rows",
                    hint: "add a condition on partition, \"offset\" or \"timestamp\", or raise wire.max_scan_rows")
            }
            var rows: [[SQLValue]] = []
            let batchStart = ContinuousClock.now
            polling: while rows.count < Self.batchSize, !remaining.isEmpty {
                let polled: KafkaConsumer.Polled
                do {
                    polled = try consumer.poll(timeoutMilliseconds: 100) { polled in
                        if case .message(let message) = polled, let end = remaining[message.partition] {
                            if message.offset >= end {
                                remaining[message.partition] = nil
                            } else {
                                rows.append(row(message))
                                rowsRead += 1
                                lastProgress = ContinuousClock.now
                                if message.offset + 1 >= end { remaining[message.partition] = nil }
                            }
                        }
                        return polled
                    }
                } catch {
                    throw WireError("58000", "\(error) (\(topic.name))")
                }
                switch polled {
                case .nothing:
                    if ContinuousClock.now - lastProgress > Self.timeout {
                        throw WireError(
                            "58000",
                            "\(description): no message from \(topic.name) in \(Self.timeout) while \(remaining.count) partitions were not read to their end"
                        )
                    }
                    // Return what there is (or an empty batch after a second), so that the
                    // statement can be cancelled while Kafka is slow.
                    if !rows.isEmpty || ContinuousClock.now - batchStart > .seconds(1) { break polling }
                case .partitionEnd(let partition): remaining[partition] = nil
                case .message, .transient: continue
                }
            }
            return rows
        }
    }

    func close() async {
        try? await queue.perform { [self] in
            consumer?.close()
            consumer = nil
        }
    }

    // MARK: - Pieces

    /// One row of a message, read in place.
    private func row(_ message: KafkaReceivedMessage) -> [SQLValue] {
        let key: SQLValue =
            !decodeKey ? .null : message.key.map { .text(String(decoding: $0, as: UTF8.self)) } ?? .null
        var value = SQLValue.null
        if decodeValue, let payload = message.payload {
            let text = String(decoding: payload, as: UTF8.self)
            switch topic.value {
            case .text: value = .text(text)
            case .json: value = .json(JSONValue(parsing: text) ?? .string(text))
            }
        }
        var headers: [(String, JSONValue)] = []
        if decodeHeaders {
            message.forEachHeader { name, data in
                headers.append((name, data.map { .string(String(decoding: $0, as: UTF8.self)) } ?? .null))
            }
        }
        return [
            .int(Int64(message.partition)), .int(message.offset),
            message.timestampMilliseconds.map(Self.timestamp) ?? .null, key, value,
            decodeHeaders ? .json(.object(headers)) : .null,
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
