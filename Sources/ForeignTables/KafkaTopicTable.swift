import BridgeCore
import KafkaClient
import WireProtocol

/// `kafka.<topic>` over the wire protocol: reads are bounded scans, INSERT produces and waits
/// for the cluster's confirmation.
public final class KafkaTopicTable: ForeignTable {
    public let name: TableName
    public let columns: [ForeignColumn]
    let topic: WireKafkaTopic
    let config: KafkaSinkConfig
    let producer: KafkaProducer
    let maxScanRows: Int

    public init(topic: WireKafkaTopic, config: KafkaSinkConfig, producer: KafkaProducer, maxScanRows: Int) {
        self.topic = topic
        self.config = config
        self.producer = producer
        self.maxScanRows = maxScanRows
        name = TableName(schema: "kafka", name: topic.name)
        columns = [
            ForeignColumn("partition", .int4, notNull: true), ForeignColumn("offset", .int8, notNull: true),
            ForeignColumn("timestamp", .timestamptz), ForeignColumn("key", .text),
            ForeignColumn("value", topic.value == .json ? .jsonb : .text), ForeignColumn("headers", .jsonb),
        ]
    }

    public func estimatedRows() async -> Int { 10_000 }

    public func scan(_ request: ScanRequest) async throws -> any ForeignScan {
        let scan = KafkaTopicScan(topic: topic, description: "kafka:\(config.brokers)", maxRows: maxScanRows)
        do {
            try await scan.open(config: config, request: request)
        } catch {
            await scan.close()
            throw error
        }
        return scan
    }

    public func insert(_ rows: [[String: SQLValue]]) async throws -> [[String: SQLValue]] {
        var records: [KafkaRecord] = []
        for row in rows {
            if let offset = row["offset"], !offset.isNull {
                throw WireError("428C9", "cannot insert into column \"offset\": Kafka assigns offsets")
            }
            var record = KafkaRecord(topic: topic.name)
            if case .int(let partition) = row["partition"] ?? .null {
                guard let value = Int32(exactly: partition), value >= 0 else {
                    throw WireError("22003", "partition \(partition) is out of range")
                }
                record.partition = value
            }
            if case .timestamp(let micros) = row["timestamp"] ?? .null { record.timestamp = micros / 1000 }
            record.key = (row["key"] ?? .null).text.map { Array($0.utf8) }
            switch row["value"] ?? .null {
            case .null: record.value = nil
            case .json(.string(let text)) where topic.value == .json:
                record.value = Array(text.utf8)
            case let value: record.value = value.text.map { Array($0.utf8) }
            }
            switch row["headers"] ?? .null {
            case .null: break
            case .json(.object(let members)):
                record.headers = members.map { name, value in
                    (name, Array((value.unquotedText ?? "").utf8))
                }
            default:
                throw WireError("22023", "headers must be a JSON object of strings, e.g. '{\"source\": \"sql\"}'")
            }
            records.append(record)
        }
        let positions = try await producer.produce(records)
        return zip(rows, positions).map { row, position in
            var written = row
            written["partition"] = .int(Int64(position.partition))
            written["offset"] = .int(position.offset)
            return written
        }
    }
}
