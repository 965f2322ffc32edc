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
            return fields.commitTime.flatMap {
                PostgresTime.unixSeconds(rfc3339: UnsafeBufferPointer(rebasing: bytes[$0]))
            }
        }
        guard let seconds else { return }
        let latency = Date().timeIntervalSince1970 - seconds
        if latency >= 0 { timer.recordNanoseconds(Int64(latency * 1e9)) }
    }
}
