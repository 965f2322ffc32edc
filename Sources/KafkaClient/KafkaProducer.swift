import BridgeCore
import CRdKafka
import Foundation
import Logging
import Synchronization

/// One librdkafka producer shared by every Kafka sink with the same connection settings.
///
/// Messages are produced on the producer's queue (its handle and topic handles are `Confined`
/// there, and counted per sink that opened it); delivery reports, errors and logs
/// arrive as events on librdkafka's main queue, which a dedicated thread polls (no C callbacks
/// into Swift). Each delivery registers a `KafkaDeliveryTracker`; a message's opaque value
/// names its tracker and its position.
public final class KafkaProducer: @unchecked Sendable {
    // @unchecked Sendable: `handle` is created, replaced and destroyed on the produce queue
    // only; the poll thread reads it under `lifecycle`, which also guards the thread's lifetime.
    let config: KafkaSinkConfig
    let logger: Logger
    public let description: String
    let produce = Confined(TopicHandles(), label: "pgbridge.kafka.produce")
    private let lifecycle = Mutex<Lifecycle>(Lifecycle())
    private let trackers = Mutex<[UInt32: KafkaDeliveryTracker]>([:])
    private let nextTrackerID = Atomic<UInt32>(1)

    /// Topic handles by name (NUL-terminated), created on first use and confined to the produce
    /// queue. Naming the topic per message would look it up and refcount it each time.
    public final class TopicHandles {
        var byName: [[UInt8]: OpaquePointer] = [:]
    }

    struct Lifecycle {
        /// The rd_kafka_t handle's address (0: none).
        var handleAddress: UInt = 0
        /// Signalled when the poll thread of the current handle has returned.
        var pollDone: DispatchSemaphore?
        var fatalError: String?
    }

    public init(config: KafkaSinkConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        self.description = "kafka:\(config.brokers)"
    }

    var handle: OpaquePointer? { OpaquePointer(bitPattern: lifecycle.withLock { $0.handleAddress }) }

    /// The fatal error of the idempotent producer, if one occurred (the handle is then replaced).
    var fatalError: String? { lifecycle.withLock { $0.fatalError } }

    /// One more sink uses the producer (the first creates the handle).
    public func open() async throws {
        try await produce.retain { [self] _ in try createHandleIfNeeded() }
    }

    /// The last sink to close flushes and destroys the handle.
    public func close() async {
        await produce.release { [self] topics in destroyHandle(topics, flushFor: .seconds(10)) }
    }

    /// Replaces a handle that hit a fatal error (idempotence state lost): called on the
    /// produce queue before a delivery.
    func replaceIfFatal(keeping current: UInt32, _ topics: TopicHandles) throws {
        guard let fatal = fatalError else { return }
        logger.warning("\(description): recreating the producer after a fatal error: \(fatal)")
        destroyHandle(topics, flushFor: .zero)
        lifecycle.withLock { $0.fatalError = nil }
        // Deliveries of every sink sharing this producer lose their reports with the handle:
        // fail them (unavailable), so their pipes send them again through the new handle.
        let orphans = trackers.withLock { trackers -> [KafkaDeliveryTracker] in
            let all = trackers.filter { $0.key != current }
            for id in all.keys { trackers.removeValue(forKey: id) }
            return Array(all.values)
        }
        for tracker in orphans {
            tracker.failRemaining(reason: "the producer was recreated after a fatal error: \(fatal)")
        }
        try createHandleIfNeeded()
    }

    func createHandleIfNeeded() throws {
        if handle != nil { return }
        let conf = try makeConfiguration()
        var error = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &error, error.count) else {
            rd_kafka_conf_destroy(conf)
            throw SinkError(
                sink: description, message: "cannot create the producer: \(cString(error))", retriable: false)
        }
        rd_kafka_set_log_queue(rk, nil)  // logs to the main queue, polled below
        let address = UInt(bitPattern: rk)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            pollLoop(address)
            done.signal()
        }
        thread.name = "pgbridge-kafka-poll"
        lifecycle.withLock {
            $0.handleAddress = address
            $0.pollDone = done
        }
        thread.start()
    }

    private func destroyHandle(_ topics: TopicHandles, flushFor timeout: Duration) {
        guard let rk = handle else { return }
        if timeout > .zero {
            let result = rd_kafka_flush(rk, Int32(timeout.components.seconds * 1000))
            if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                logger.warning("\(description): \(rd_kafka_outq_len(rk)) messages were not delivered before close")
            }
        }
        let done = lifecycle.withLock {
            $0.handleAddress = 0  // the poll loop sees this and returns
            return $0.pollDone
        }
        done?.wait()
        for topic in topics.byName.values { rd_kafka_topic_destroy(topic) }
        topics.byName.removeAll()
        rd_kafka_destroy(rk)
    }

    private func makeConfiguration() throws -> OpaquePointer {
        let properties: [(String, String)] = [
            ("bootstrap.servers", config.brokers),
            ("client.id", config.clientID),
            ("enable.idempotence", "true"),
            // A batch that fails for good must not be followed by later messages that succeed
            // (a gap breaks per-key order): librdkafka then raises a fatal error instead, the
            // producer is recreated and the whole delivery is sent again.
            ("enable.gapless.guarantee", "true"),
            ("acks", "all"),
            ("batch.num.messages", "\(config.batchCount)"),
            (
                "linger.ms",
                "\(Double(config.linger.components.attoseconds) / 1e15 + Double(config.linger.components.seconds) * 1000)"
            ),
            ("compression.codec", config.compression),
            ("message.timeout.ms", "\(config.deliveryTimeout.components.seconds * 1000)"),
            ("queue.buffering.max.messages", "100000"),
            ("log.queue", "true"),
        ]
        let conf: OpaquePointer
        do throws(KafkaSinkConfig.RejectedProperty) {
            conf = try config.librdkafkaConfiguration(properties)
        } catch {
            throw SinkError(
                sink: description, message: "librdkafka rejected property \(error.name): \(error.reason)",
                retriable: false)
        }
        rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG))
        return conf
    }

    /// The handle of a topic (name NUL-terminated); call on the produce queue only.
    func topicHandle(_ name: [UInt8], _ rk: OpaquePointer, _ topics: TopicHandles) -> OpaquePointer? {
        if let handle = topics.byName[name] { return handle }
        let handle = name.withUnsafeBufferPointer { buffer in
            rd_kafka_topic_new(rk, UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self), nil)
        }
        if let handle { topics.byName[name] = handle }
        return handle
    }

    // MARK: - Trackers

    public func register(_ tracker: KafkaDeliveryTracker) -> UInt32 {
        var id = nextTrackerID.add(1, ordering: .relaxed).newValue
        if id == 0 { id = nextTrackerID.add(1, ordering: .relaxed).newValue }
        trackers.withLock { $0[id] = tracker }
        return id
    }

    public func unregister(_ id: UInt32) {
        _ = trackers.withLock { $0.removeValue(forKey: id) }
    }

    // MARK: - Polling

    private func pollLoop(_ address: UInt) {
        guard let rk = OpaquePointer(bitPattern: address) else { return }
        let queue = rd_kafka_queue_get_main(rk)
        defer { rd_kafka_queue_destroy(queue) }
        while lifecycle.withLock({ $0.handleAddress == address }) {
            guard let event = rd_kafka_queue_poll(queue, 100) else { continue }
            handle(event)
            rd_kafka_event_destroy(event)
        }
        // Drain what is left (reports of a final flush were already handled by it).
        while let event = rd_kafka_queue_poll(queue, 0) {
            handle(event)
            rd_kafka_event_destroy(event)
        }
    }

    private func handle(_ event: OpaquePointer) {
        switch rd_kafka_event_type(event) {
        case Int32(RD_KAFKA_EVENT_DR):
            // One report event carries many messages, mostly of one delivery: look the tracker
            // up once per run and count successes in bulk.
            var currentID: UInt32 = 0
            var current: KafkaDeliveryTracker?
            var delivered = 0
            while let message = rd_kafka_event_message_next(event) {
                let token = UInt(bitPattern: message.pointee._private)
                let trackerID = UInt32(truncatingIfNeeded: token >> 32)
                let index = Int(UInt32(truncatingIfNeeded: token))
                if trackerID != currentID || current == nil {
                    if delivered > 0 { current?.delivered(count: delivered) }
                    delivered = 0
                    currentID = trackerID
                    current = trackers.withLock { $0[trackerID] }
                }
                guard let tracker = current else { continue }
                let err = message.pointee.err
                if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    delivered += 1
                    if tracker.recordsPositions {
                        tracker.recorded(index, partition: message.pointee.partition, offset: message.pointee.offset)
                    }
                } else {
                    tracker.failed(index, code: err, reason: String(cString: rd_kafka_err2str(err)))
                }
            }
            if delivered > 0 { current?.delivered(count: delivered) }
        case Int32(RD_KAFKA_EVENT_ERROR):
            let code = rd_kafka_event_error(event)
            let text = String(cString: rd_kafka_event_error_string(event))
            if rd_kafka_event_error_is_fatal(event) != 0 {
                var buffer = [CChar](repeating: 0, count: 512)
                if let rk = handle { _ = rd_kafka_fatal_error(rk, &buffer, buffer.count) }
                let fatal = cString(buffer)
                lifecycle.withLock { $0.fatalError = fatal.isEmpty ? text : fatal }
                logger.error("\(description): fatal producer error: \(fatal.isEmpty ? text : fatal)")
            } else if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__TRANSPORT {
                logger.warning("\(description): \(text)")
            } else {
                logger.info("\(description): \(text)")
            }
        case Int32(RD_KAFKA_EVENT_LOG):
            var facility: UnsafePointer<CChar>?
            var text: UnsafePointer<CChar>?
            var level: Int32 = 0
            guard rd_kafka_event_log(event, &facility, &text, &level) == 0, let text else { return }
            let message =
                "\(description): librdkafka \(facility.map { String(cString: $0) } ?? ""): \(String(cString: text))"
            if message.contains("enable.gapless.guarantee is experimental") {
                logger.debug("\(message)")  // set on purpose (see makeConfiguration)
            } else if level <= 3 {
                logger.error("\(message)")
            } else if level == 4 {
                logger.warning("\(message)")
            } else {
                logger.debug("\(message)")
            }
        default:
            break
        }
    }

    func onProduceQueue<T: Sendable>(_ body: @escaping @Sendable (TopicHandles) throws -> T) async throws -> T {
        try await produce.run(body)
    }
}

/// The text of a NUL-terminated C buffer.
func cString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
