import BridgeCore
import CRdKafka
import Synchronization

/// Collects the delivery reports of one delivery and resumes it when the last one arrived.
public final class KafkaDeliveryTracker: Sendable {
    private struct State {
        var remaining: Int
        var rejections: [Rejection] = []
        /// Set when a report says the cluster could not be reached: the whole delivery is retried.
        var unavailable: String?
        var continuation: CheckedContinuation<DeliveryResult, any Error>?
        /// Where each message landed, when `recordsPositions`.
        var positions: [(partition: Int32, offset: Int64)] = []
    }

    private let state: Mutex<State>
    /// Global index of each batch's first event.
    private let batchStarts: [Int]
    private let sink: String
    /// Whether the reports' partitions and offsets are kept (SQL INSERTs return them).
    let recordsPositions: Bool

    public init(batches: [EventBatch], sink: String) {
        var starts: [Int] = []
        var total = 0
        for batch in batches {
            starts.append(total)
            total += batch.eventCount
        }
        batchStarts = starts
        self.sink = sink
        recordsPositions = false
        state = Mutex(State(remaining: total))
    }

    /// A tracker of `count` single messages that keeps where each landed.
    init(count: Int, sink: String) {
        batchStarts = [0]
        self.sink = sink
        recordsPositions = true
        state = Mutex(State(remaining: count, positions: Array(repeating: (-1, -1), count: count)))
    }

    func recorded(_ index: Int, partition: Int32, offset: Int64) {
        state.withLock { state in
            if state.positions.indices.contains(index) { state.positions[index] = (partition, offset) }
        }
    }

    var positions: [(partition: Int32, offset: Int64)] { state.withLock { $0.positions } }

    public func start(_ continuation: CheckedContinuation<DeliveryResult, any Error>) {
        let done = state.withLock { state -> Bool in
            state.continuation = continuation
            return state.remaining == 0
        }
        if done { resume() }
    }

    func delivered(count: Int) { finish(count: count) { _ in } }

    /// Message `index` was not taken (librdkafka refused it, or it could not be built).
    public func failed(_ index: Int, _ failure: KafkaProduceFailure) {
        failed(index, code: failure.code, reason: failure.reason)
    }

    func failed(_ index: Int, code: rd_kafka_resp_err_t, reason: String) {
        let kind = KafkaErrorKind(code)
        let position = position(of: index)
        finish(count: 1) { state in
            switch kind {
            case .unavailable:
                if state.unavailable == nil { state.unavailable = reason }
            case .permanent, .transient:
                state.rejections.append(
                    Rejection(
                        batch: position.batch, event: position.event, reason: "Kafka: \(reason)",
                        isPermanent: kind == .permanent))
            }
        }
    }

    /// The produce loop stopped early: the `count` messages it did not produce fail the delivery.
    public func abandon(count: Int, reason: String) {
        finish(count: count) { state in
            if state.unavailable == nil { state.unavailable = reason }
        }
    }

    /// Fails every message still waiting for its report (the handle that would report it is gone).
    func failRemaining(reason: String) {
        let remaining = state.withLock { $0.remaining }
        if remaining > 0 { abandon(count: remaining, reason: reason) }
    }

    private func finish(count: Int, _ update: (inout State) -> Void) {
        let done = state.withLock { state -> Bool in
            update(&state)
            state.remaining -= count
            return state.remaining == 0 && state.continuation != nil
        }
        if done { resume() }
    }

    private func resume() {
        let (continuation, unavailable, rejections) = state.withLock { state in
            let continuation = state.continuation
            state.continuation = nil
            return (continuation, state.unavailable, state.rejections)
        }
        guard let continuation else { return }
        if let unavailable {
            continuation.resume(throwing: SinkError(sink: sink, message: unavailable))
        } else {
            continuation.resume(
                returning: DeliveryResult(rejected: rejections.sorted { ($0.batch, $0.event) < ($1.batch, $1.event) }))
        }
    }

    private func position(of index: Int) -> (batch: Int, event: Int) {
        var low = 0
        var high = batchStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if batchStarts[middle] <= index { low = middle } else { high = middle - 1 }
        }
        return (low, index - batchStarts[low])
    }
}

/// How pgbridge treats a Kafka error on a message.
enum KafkaErrorKind: Equatable {
    /// The cluster could not be reached in time: retry the whole delivery, without limit.
    case unavailable
    /// Sending it again cannot succeed (too large, invalid): dead-lettered at once.
    case permanent
    /// Refused now, may succeed later: retried, then dead-lettered.
    case transient

    init(_ code: rd_kafka_resp_err_t) {
        switch code {
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
            RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__FATAL, RD_KAFKA_RESP_ERR__PURGE_QUEUE,
            RD_KAFKA_RESP_ERR__PURGE_INFLIGHT, RD_KAFKA_RESP_ERR__DESTROY, RD_KAFKA_RESP_ERR__QUEUE_FULL:
            self = .unavailable
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
            RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR__INVALID_ARG,
            RD_KAFKA_RESP_ERR__BAD_MSG, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, RD_KAFKA_RESP_ERR__INVALID_TYPE:
            self = .permanent
        default:
            self = .transient
        }
    }
}
