import BridgeCore
import Foundation
import Metrics

/// `pgbridge_source_latency_seconds{pipe}`: from a transaction's commit to the moment the pipe
/// has it (one sample per delivery group, from its newest event).
struct SourceLatency: Sendable {
    let timer: Metrics.Timer

    init(pipe: String, factory: any MetricsFactory) {
        timer = Metrics.Timer(
            label: "pgbridge_source_latency_seconds", dimensions: [("pipe", pipe)], factory: factory)
    }

    func record(_ group: [EventBatch]) {
        guard let batch = group.last(where: { $0.eventCount > 0 }) else { return }
        let seconds: Double? = batch.bytes.withUnsafeBufferPointer { bytes in
            let fields = EventFields.scan(bytes, event: batch.eventRange(at: batch.eventCount - 1))
            return fields.commitTime.flatMap { Self.epochSeconds(UnsafeBufferPointer(rebasing: bytes[$0])) }
        }
        guard let seconds else { return }
        let latency = Date().timeIntervalSince1970 - seconds
        if latency >= 0 { timer.recordNanoseconds(Int64(latency * 1e9)) }
    }

    /// `2026-11-20T10:00:00.123456Z` as seconds since 1970; nil for any other shape.
    static func epochSeconds(_ text: UnsafeBufferPointer<UInt8>) -> Double? {
        guard text.count >= 20, text[text.count - 1] == UInt8(ascii: "Z") else { return nil }
        func number(_ start: Int, _ length: Int) -> Int? {
            var value = 0
            for index in start..<(start + length) {
                let digit = Int(text[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2), (1...12).contains(month)
        else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        var fraction = 0.0
        if text[19] == UInt8(ascii: ".") {
            var scale = 0.1
            for index in 20..<(text.count - 1) {
                let digit = Int(text[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                fraction += Double(digit) * scale
                scale /= 10
            }
        }
        return Double(days * 86_400 + hour * 3600 + minute * 60 + second) + fraction
    }
}
