import BridgeCore
import Logging

extension PipeRunner {
    /// Delivers a group to one sink until every event is either confirmed or dead-lettered.
    ///
    /// - An unavailable sink (the delivery throws) is retried with backoff without limit: the
    ///   pipe waits and the source is not confirmed meanwhile.
    /// - Events the sink rejected are sent again up to `retries` times with backoff, then go to
    ///   the dead-letter target with the reason; permanent rejections go there at once. Later
    ///   events of the same key are sent again after a retried event, so the last write of a
    ///   key stays the last one the sink sees.
    func deliver(_ fullGroup: [EventBatch], to index: Int) async throws {
        let sink = sinks[index]
        let metrics = metrics[index]
        let group = events(of: fullGroup, for: sink.name)
        let events = group.reduce(0) { $0 + $1.eventCount }
        guard events > 0 else { return }
        let bytes = group.reduce(0) { $0 + $1.bytes.count }
        metrics.inFlight.record(events)
        defer { metrics.inFlight.record(0) }
        let started = ContinuousClock.now
        var pending = group
        var result = try await withRetries(
            "deliver to \(sink.name) (\(sink.sink.description))", errors: metrics, sink: index
        ) { try await sink.sink.deliver(pending) }
        var attempt = 1
        var delay = sink.delivery.retryInterval
        var deadLettered = 0
        while !result.rejected.isEmpty {
            metrics.errors.increment(by: result.rejected.count)
            let reason = "\(sink.name) rejected \(result.rejected.count) events: \(result.rejected[0].reason)"
            recordError(reason)
            statsBox.withLock { stats in
                stats.sinks[index].errors += UInt64(result.rejected.count)
                stats.sinks[index].lastError = reason
            }
            var letters: [(letter: DeadLetter, position: (batch: Int, event: Int))] = []
            var retryPositions: [(batch: Int, event: Int)] = []
            for rejection in result.rejected {
                let position = (rejection.batch, rejection.event)
                if rejection.isPermanent || attempt > sink.delivery.retries {
                    let letter = DeadLetter(
                        sink: sink.name, reason: rejection.reason, attempts: attempt,
                        event: pending[rejection.batch].body(at: rejection.event))
                    letters.append((letter, position))
                } else {
                    retryPositions.append(position)
                }
            }
            if !letters.isEmpty {
                if let deadLetters {
                    logger.error(
                        "\(sink.name) rejected \(letters.count) events: \(letters[0].letter.reason); sent to \(deadLetters.description)"
                    )
                    try await deadLetters.send(letters.map(\.letter))
                    deadLettered += letters.count
                    metrics.deadLetters.increment(by: letters.count)
                    statsBox.withLock { stats in
                        stats.deadLetters += UInt64(letters.count)
                        stats.sinks[index].deadLetters += UInt64(letters.count)
                    }
                } else {
                    // No target: never drop, keep sending them.
                    logger.error(
                        "\(sink.name) rejected \(letters.count) events for good (\(letters[0].letter.reason)) and the pipe has no dead_letter target: retrying them"
                    )
                    retryPositions += letters.map(\.position)
                }
            }
            if retryPositions.isEmpty { break }
            let retry = Self.retryBatch(pending, rejected: retryPositions)
            metrics.retries.increment(by: retry.eventCount)
            statsBox.withLock { stats in
                stats.retries += UInt64(retry.eventCount)
                stats.sinks[index].retries += UInt64(retry.eventCount)
            }
            logger.warning(
                "\(sink.name) rejected \(retryPositions.count) events (attempt \(attempt) of \(sink.delivery.retries + 1)): \(result.rejected[0].reason); retrying in \(delay)"
            )
            let retryAfter = result.rejected.compactMap(\.retryAfter).max() ?? .zero
            try await Task.sleep(for: max(delay.jittered(), min(retryAfter, .seconds(300))))
            delay = min(delay * 2, sink.delivery.maxRetryInterval)
            attempt += 1
            pending = [retry]
            result = try await withRetries(
                "deliver to \(sink.name) (\(sink.sink.description))", errors: metrics, sink: index
            ) {
                try await sink.sink.deliver(pending)
            }
        }
        metrics.events.increment(by: max(0, events - deadLettered))
        metrics.bytes.increment(by: bytes)
        statsBox.withLock { stats in
            stats.sinks[index].events += UInt64(max(0, events - deadLettered))
            stats.sinks[index].bytes += UInt64(bytes)
        }
        metrics.latency.recordNanoseconds((ContinuousClock.now - started).nanosecondCount)
    }

    /// The rejected events, in delivery order, plus every later event with the key of a rejected
    /// one (already delivered, but it must arrive again after the retried event).
    static func retryBatch(_ pending: [EventBatch], rejected: [(batch: Int, event: Int)]) -> EventBatch {
        let rejectedSet = Set(rejected.map { $0.batch << 32 | $0.event })
        let first = rejected.min { ($0.batch, $0.event) < ($1.batch, $1.event) }!
        var keys: Set<[UInt8]> = []
        var retry = EventBatch()
        for (b, batch) in pending.enumerated() where b >= first.batch {
            batch.bytes.withUnsafeBufferPointer { bytes in
                for e in batch.eventEnds.indices where b > first.batch || e >= first.event {
                    let fields = EventFields.scan(bytes, event: batch.eventRange(at: e))
                    let key = fields.key.flatMap { JSONScanner(bytes).isNull($0) ? nil : Array(bytes[$0]) }
                    if rejectedSet.contains(b << 32 | e) {
                        if let key { keys.insert(key) }
                        retry.appendEvent(from: batch, at: e)
                    } else if let key, keys.contains(key) {
                        retry.appendEvent(from: batch, at: e)
                    }
                }
            }
        }
        return retry
    }

    /// The events of `group` that routes send to `sink` (all of them without routes).
    func events(of group: [EventBatch], for sink: String) -> [EventBatch] {
        guard !routeSinks.isEmpty else { return group }
        return group.map { batch in
            guard let routes = batch.routes else { return batch }
            func included(_ route: UInt8) -> Bool {
                route == 0 || Int(route) > routeSinks.count || routeSinks[Int(route) - 1]?.contains(sink) ?? true
            }
            if routes.allSatisfy(included) { return batch }
            var subset = EventBatch(checkpoint: batch.checkpoint, sequence: batch.sequence)
            for index in batch.eventEnds.indices where included(routes[index]) {
                subset.appendEvent(from: batch, at: index)
            }
            return subset
        }
    }

    func withRetries<T>(
        _ what: @autoclosure () -> String, errors: SinkMetrics, sink index: Int, _ body: () async throws -> T
    ) async throws -> T {
        try await withRetries(what()) {
            do {
                return try await body()
            } catch {
                errors.errors.increment()
                statsBox.withLock { stats in
                    stats.sinks[index].errors += 1
                    stats.sinks[index].lastError = "\(error)"
                }
                throw error
            }
        }
    }
}
