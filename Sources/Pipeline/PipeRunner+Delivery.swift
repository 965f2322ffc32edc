import BridgeCore
import Logging

extension PipeRunner {
    /// Delivers a group to one sink until every event is either confirmed or dead-lettered.
    ///
    /// - An unavailable sink (the delivery throws) is retried with backoff without limit: the
    ///   pipe waits and the source is not confirmed meanwhile.
    /// - Events the sink rejected are sent again up to `retries` times with backoff, then go to
    ///   the dead-letter target with the reason; permanent rejections go there at once.
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
        let what = "deliver to \(sink.name) (\(sink.sink.description))"
        var pending = group
        var result = try await withRetries(what, errors: metrics) { try await sink.sink.deliver(pending) }
        var attempt = 1
        var delay = sink.delivery.retryInterval
        var deadLettered = 0
        while !result.rejected.isEmpty {
            metrics.errors.increment(by: result.rejected.count)
            var letters: [DeadLetter] = []
            var retry = EventBatch()
            for rejection in result.rejected {
                let event = pending[rejection.batch].event(at: rejection.event)
                let route = pending[rejection.batch].route(at: rejection.event)
                if rejection.isPermanent || attempt > sink.delivery.retries {
                    letters.append(
                        DeadLetter(
                            sink: sink.name, reason: rejection.reason, attempts: attempt, event: event, route: route))
                } else {
                    retry.appendEvent(event, route: route)
                }
            }
            if !letters.isEmpty {
                try await sendToDeadLetters(letters, from: sink, retry: &retry)
                deadLettered += letters.count
                metrics.deadLetters.increment(by: letters.count)
            }
            if retry.eventCount == 0 { break }
            metrics.retries.increment(by: retry.eventCount)
            statsBox.withLock { $0.retries += UInt64(retry.eventCount) }
            let sample = result.rejected[0].reason
            logger.warning(
                "\(sink.name) rejected \(retry.eventCount) events (attempt \(attempt) of \(sink.delivery.retries + 1)): \(sample); retrying in \(delay)"
            )
            let retryAfter = result.rejected.compactMap(\.retryAfter).max() ?? .zero
            try await Task.sleep(for: max(delay.jittered(), min(retryAfter, .seconds(300))))
            delay = min(delay * 2, sink.delivery.maxRetryInterval)
            attempt += 1
            pending = [retry]
            result = try await withRetries(what, errors: metrics) { try await sink.sink.deliver(pending) }
        }
        metrics.events.increment(by: events - deadLettered)
        metrics.bytes.increment(by: bytes)
        metrics.latency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
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
                subset.appendEvent(batch.event(at: index), route: routes[index])
            }
            return subset
        }
    }

    /// Hands rejected events to the dead-letter target; without one, they stay in `retry` (and
    /// are retried until the sink takes them: never a silent drop).
    private func sendToDeadLetters(_ letters: [DeadLetter], from sink: PipeSink, retry: inout EventBatch) async throws {
        guard let deadLetters else {
            logger.error(
                "\(sink.name) rejected \(letters.count) events for good (\(letters[0].reason)) and the pipe has no dead_letter target: retrying them"
            )
            for letter in letters { retry.appendEvent(letter.event, route: letter.route) }
            return
        }
        logger.error(
            "\(sink.name) rejected \(letters.count) events: \(letters[0].reason); sent to \(deadLetters.description)")
        statsBox.withLock { $0.deadLetters += UInt64(letters.count) }
        try await deadLetters.send(letters)
    }

    func withRetries<T>(_ what: String, errors: SinkMetrics, _ body: () async throws -> T) async throws -> T {
        try await withRetries(what) {
            do {
                return try await body()
            } catch {
                errors.errors.increment()
                throw error
            }
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
