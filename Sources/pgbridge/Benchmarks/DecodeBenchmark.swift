import BridgeCore
import Foundation
import PostgresSource

/// Measures pgoutput decode + native JSON encode in-process, through the same ChangeAssembler
/// the replication thread uses (batches included, no I/O).
enum DecodeBenchmark {
    struct Result: Sendable {
        let events: Int
        let seconds: Double
        let outputBytes: Int
        var eventsPerSecond: Double { Double(events) / seconds }
    }

    /// Runs `events` inserts of a 5-column row (bigint, text, float8, timestamptz, text) in
    /// transactions of `transactionSize` rows.
    static func run(events: Int, transactionSize: Int = 1000) throws -> Result {
        let directory = NSTemporaryDirectory() + "pgbridge-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let assembler = ChangeAssembler(
            encoder: NativeEncoder(database: "bench"), spill: try StreamSpill(directory: directory), skipThrough: .zero,
            messagesEnabled: true, maxBatchBytes: 1 << 20)
        var outputBytes = 0
        assembler.flushBatch = { [unowned assembler] in
            outputBytes += assembler.batch.bytes.count
            assembler.batchWasHandedOut()
        }
        let relation = relationMessage()
        let inserts = (0..<64).map { insertMessage(id: 1_000_000 + $0) }
        var lsn: UInt64 = 0x1_0000_0000
        let start = ContinuousClock.now
        var produced = 0
        try relation.withUnsafeBytes { try assembler.handle($0, lsn: 0) }
        while produced < events {
            let size = min(transactionSize, events - produced)
            try begin(lsn: lsn + UInt64(size) * 200).withUnsafeBytes { try assembler.handle($0, lsn: lsn) }
            for i in 0..<size {
                try inserts[i & 63].withUnsafeBytes { try assembler.handle($0, lsn: lsn + UInt64(i) * 200) }
            }
            lsn += UInt64(size) * 200
            try commit(lsn: lsn).withUnsafeBytes { try assembler.handle($0, lsn: lsn) }
            lsn += 64
            produced += size
        }
        outputBytes += assembler.batch.bytes.count
        let elapsed = ContinuousClock.now - start
        return Result(events: produced, seconds: elapsed.seconds, outputBytes: outputBytes)
    }

    // MARK: - Synthetic messages (pgoutput protocol 2 layouts)

    private static func append<T: FixedWidthInteger>(_ value: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }

    private static func cString(_ s: String, _ out: inout [UInt8]) {
        out.append(contentsOf: s.utf8)
        out.append(0)
    }

    static func relationMessage() -> [UInt8] {
        var m: [UInt8] = [UInt8(ascii: "R")]
        append(UInt32(16384), &m)
        cString("public", &m)
        cString("readings", &m)
        m.append(UInt8(ascii: "d"))
        let columns: [(String, UInt32, UInt8)] = [
            ("id", 20, 1), ("device", 25, 0), ("temperature", 701, 0), ("reading_time", 1184, 0), ("note", 25, 0),
        ]
        append(UInt16(columns.count), &m)
        for (name, type, flags) in columns {
            m.append(flags)
            cString(name, &m)
            append(type, &m)
            append(Int32(-1), &m)
        }
        return m
    }

    static func insertMessage(id: Int) -> [UInt8] {
        var m: [UInt8] = [UInt8(ascii: "I")]
        append(UInt32(16384), &m)
        m.append(UInt8(ascii: "N"))
        let values = [
            String(id), "device-\(id % 97)", "21.\(id % 10)",
            "2026-11-20 10:00:\(String(format: "%02d", id % 60)).123456+00",
            "reading number \(id)",
        ]
        append(UInt16(values.count), &m)
        for value in values {
            m.append(UInt8(ascii: "t"))
            append(UInt32(value.utf8.count), &m)
            m.append(contentsOf: value.utf8)
        }
        return m
    }

    static func begin(lsn: UInt64) -> [UInt8] {
        var m: [UInt8] = [UInt8(ascii: "B")]
        append(lsn, &m)
        append(Int64(848_000_000_000_000), &m)
        append(UInt32(1000), &m)
        return m
    }

    static func commit(lsn: UInt64) -> [UInt8] {
        var m: [UInt8] = [UInt8(ascii: "C"), 0]
        append(lsn, &m)
        append(lsn + 48, &m)
        append(Int64(848_000_000_000_000), &m)
        return m
    }
}
