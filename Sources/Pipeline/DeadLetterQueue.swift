import BridgeCore
import Foundation
import Logging

/// An event a sink rejected for good, on its way to the pipe's dead-letter target.
public struct DeadLetter: Sendable {
    public var sink: String
    public var reason: String
    public var attempts: Int
    /// The event as the sink would have received it (in the pipe's format).
    public var event: ArraySlice<UInt8>

    public init(sink: String, reason: String, attempts: Int, event: ArraySlice<UInt8>) {
        self.sink = sink
        self.reason = reason
        self.attempts = attempts
        self.event = event
    }
}

/// Writes dead letters as JSON records to the pipe's dead-letter sink:
/// `{"pipe":…,"sink":…,"reason":…,"attempts":…,"failed_at":…,"event":{…}}`.
///
/// Never drops: when the target is down or refuses a record, it is retried until it is stored
/// (the pipe waits meanwhile, so the source is not confirmed past a lost event).
public final class DeadLetterQueue: Sendable {
    let pipe: String
    let target: any EventSink
    /// Takes the records the target refuses for good (e.g. too large for a Kafka dead-letter
    /// topic): a local file, so that such a record cannot stall the pipe forever.
    let fallback: (any EventSink)?
    let logger: Logger
    let retryInterval: Duration
    let maxRetryInterval: Duration

    public init(
        pipe: String, target: any EventSink, fallback: (any EventSink)? = nil, logger: Logger,
        retryInterval: Duration = .milliseconds(500), maxRetryInterval: Duration = .seconds(30)
    ) {
        self.pipe = pipe
        self.target = target
        self.fallback = fallback
        self.logger = logger
        self.retryInterval = retryInterval
        self.maxRetryInterval = maxRetryInterval
    }

    public var description: String { target.description }

    func open() async throws {
        try await target.open()
        try await fallback?.open()
    }

    func close() async {
        await target.close()
        await fallback?.close()
    }

    func send(_ letters: [DeadLetter]) async throws {
        guard !letters.isEmpty else { return }
        var batch = EventBatch()
        let failedAt = Date().timeIntervalSince1970
        for letter in letters {
            Self.encode(letter, pipe: pipe, failedAt: failedAt, into: &batch.bytes)
            batch.endEvent()
        }
        try await store(batch, in: target, fallback: fallback)
    }

    /// Stores every record in `sink`, retrying what fails; records it refuses for good go to
    /// `fallback` (when there is one; else they are retried too).
    private func store(_ batch: EventBatch, in sink: any EventSink, fallback: (any EventSink)?) async throws {
        var delay = retryInterval
        var pending = batch
        while true {
            do {
                let result = try await sink.deliver([pending])
                if result.rejected.isEmpty { return }
                let reasons = Set(result.rejected.map(\.reason)).sorted().joined(separator: "; ")
                var refused = EventBatch()
                var retry = EventBatch()
                for rejection in result.rejected {
                    if rejection.isPermanent && fallback != nil {
                        refused.appendEvent(from: pending, at: rejection.event)
                    } else {
                        retry.appendEvent(from: pending, at: rejection.event)
                    }
                }
                if let fallback, refused.eventCount > 0 {
                    logger.error(
                        "dead-letter target \(sink.description) refused \(refused.eventCount) records for good (\(reasons)): writing them to \(fallback.description)"
                    )
                    try await store(refused, in: fallback, fallback: nil)
                }
                if retry.eventCount == 0 { return }
                logger.error(
                    "dead-letter target \(sink.description) refused \(retry.eventCount) records: \(reasons); retrying")
                pending = retry
            } catch {
                guard !Task.isCancelled else { throw error }
                logger.error("dead-letter target \(sink.description) failed: \(error); retrying in \(delay)")
            }
            try await Task.sleep(for: delay.jittered())
            delay = min(delay * 2, maxRetryInterval)
        }
    }

    static func encode(_ letter: DeadLetter, pipe: String, failedAt: Double, into out: inout [UInt8]) {
        JSONBytes.appendRaw("{\"pipe\":", into: &out)
        JSONBytes.appendString(pipe, into: &out)
        JSONBytes.appendRaw(",\"sink\":", into: &out)
        JSONBytes.appendString(letter.sink, into: &out)
        JSONBytes.appendRaw(",\"reason\":", into: &out)
        JSONBytes.appendString(letter.reason, into: &out)
        JSONBytes.appendRaw(",\"attempts\":", into: &out)
        JSONBytes.appendInt(Int64(letter.attempts), into: &out)
        JSONBytes.appendRaw(",\"failed_at\":\"", into: &out)
        PostgresTime.writeRFC3339(PostgresTime.fromUnixMicroseconds(Int64(failedAt * 1_000_000)), into: &out)
        JSONBytes.appendRaw("\",\"event\":", into: &out)
        out.append(contentsOf: letter.event)
        out.append(UInt8(ascii: "}"))
    }
}
