import BridgeCore
import Metrics

/// A sink as a pipe uses it: the sink, its delivery settings and its metrics.
public struct PipeSink: Sendable {
    public var name: String
    public var sink: any EventSink
    public var delivery: DeliveryOptions

    public init(name: String, sink: any EventSink, delivery: DeliveryOptions = DeliveryOptions()) {
        self.name = name
        self.sink = sink
        self.delivery = delivery
    }
}

/// Per-sink metrics (swift-metrics; exported by whatever backend the process bootstrapped).
struct SinkMetrics: Sendable {
    let events: Counter
    let bytes: Counter
    let errors: Counter
    let retries: Counter
    let deadLetters: Counter
    let inFlight: Gauge
    let latency: Timer

    init(pipe: String, sink: String, factory: any MetricsFactory = MetricsSystem.factory) {
        let dimensions = [("pipe", pipe), ("sink", sink)]
        events = Counter(label: "pgbridge_sink_events_total", dimensions: dimensions, factory: factory)
        bytes = Counter(label: "pgbridge_sink_bytes_total", dimensions: dimensions, factory: factory)
        errors = Counter(label: "pgbridge_sink_errors_total", dimensions: dimensions, factory: factory)
        retries = Counter(label: "pgbridge_sink_retries_total", dimensions: dimensions, factory: factory)
        deadLetters = Counter(label: "pgbridge_sink_dead_letters_total", dimensions: dimensions, factory: factory)
        inFlight = Gauge(label: "pgbridge_sink_in_flight_events", dimensions: dimensions, factory: factory)
        latency = Timer(label: "pgbridge_sink_delivery_seconds", dimensions: dimensions, factory: factory)
    }
}
