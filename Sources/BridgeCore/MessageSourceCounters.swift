import Foundation
import Metrics
import Synchronization

/// What a message source read, and what waits for it, per partition, stream or queue.
public struct MessageSourceStats: Sendable, Equatable {
    /// Messages read (each once per read: a message read again after a restart counts again).
    public var messages: UInt64 = 0
    /// Their payload bytes.
    public var bytes: UInt64 = 0
    /// Messages that could not be events (dead-lettered with the reason).
    public var refused: UInt64 = 0
    /// Messages not read yet, per `topic[partition]`, stream or queue, where the broker says:
    /// Kafka's high watermark minus the consumer's position, the Redis group's `lag`,
    /// RabbitMQ's ready messages.
    public var lag: [String: Int64] = [:]
    /// Read and not acknowledged yet: the Redis group's pending entries, the deliveries
    /// pgbridge holds from a RabbitMQ queue.
    public var pending: [String: Int64] = [:]
    /// When `lag` and `pending` were measured.
    public var measuredAt: Date?

    public init() {}
}

/// Counts what a message source reads, for `/v1/pipes/{name}` and `/metrics`:
/// `pgbridge_source_messages_total`, `pgbridge_source_bytes_total`,
/// `pgbridge_source_refused_total` (per pipe), `pgbridge_source_lag_messages` and
/// `pgbridge_source_pending_messages` (per pipe and partition, stream or queue).
public final class MessageSourceCounters: Sendable {
    struct State {
        var stats = MessageSourceStats()
        var gauges: [String: Gauge] = [:]
    }

    let pipe: String
    let factory: any MetricsFactory
    fileprivate let state = Mutex(State())
    private let messages: Counter
    private let bytes: Counter
    private let refused: Counter

    /// How often a source measures `lag` and `pending` (a round trip to the broker, at most).
    public static let measureInterval = Duration.seconds(5)

    public init(pipe: String, factory: any MetricsFactory = MetricsSystem.factory) {
        self.pipe = pipe
        self.factory = factory
        let dimensions = [("pipe", pipe)]
        messages = Counter(label: "pgbridge_source_messages_total", dimensions: dimensions, factory: factory)
        bytes = Counter(label: "pgbridge_source_bytes_total", dimensions: dimensions, factory: factory)
        refused = Counter(label: "pgbridge_source_refused_total", dimensions: dimensions, factory: factory)
    }

    public var stats: MessageSourceStats { state.withLock { $0.stats } }

    /// Counts one batch's messages (events and refused messages) and payload bytes.
    public func counted(messages: Int, bytes: Int, refused: Int) {
        state.withLock {
            $0.stats.messages += UInt64(messages)
            $0.stats.bytes += UInt64(bytes)
            $0.stats.refused += UInt64(refused)
        }
        self.messages.increment(by: Int64(messages))
        self.bytes.increment(by: Int64(bytes))
        if refused > 0 { self.refused.increment(by: Int64(refused)) }
    }

    /// Records a measurement: every name of `lag` and `pending` (a partition no longer
    /// assigned, a queue no longer read is left out: its gauge goes).
    public func measured(lag: [String: Int64], pending: [String: Int64]) {
        state.withLock { state in
            state.stats.lag = lag
            state.stats.pending = pending
            state.stats.measuredAt = Date()
            var current: Set<String> = []
            for (kind, values) in [("lag", lag), ("pending", pending)] {
                for (name, value) in values {
                    let key = "\(kind)\u{0}\(name)"
                    current.insert(key)
                    let gauge =
                        state.gauges[key]
                        ?? Gauge(
                            label: "pgbridge_source_\(kind)_messages", dimensions: [("pipe", pipe), ("of", name)],
                            factory: factory)
                    state.gauges[key] = gauge
                    gauge.record(value)
                }
            }
            for (key, gauge) in state.gauges where !current.contains(key) {
                gauge.destroy()
                state.gauges[key] = nil
            }
        }
    }
}

extension MessageSourceCounters {
    /// The source is gone: its lag and pending gauges go (a stopped or dropped pipe shows no
    /// stale backlog); the counters stay, as counters do.
    public func close() {
        state.withLock { state in
            for gauge in state.gauges.values { gauge.destroy() }
            state.gauges = [:]
        }
    }
}

/// A source that counts what it reads (the message sources).
public protocol CountsMessages {
    var counters: MessageSourceCounters { get }
}
