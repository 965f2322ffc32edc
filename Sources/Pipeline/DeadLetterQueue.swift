import BridgeCore
import Foundation
import Logging

/// An event a sink rejected for good, on its way to the pipe's dead-letter target.
public struct DeadLetter: Sendable {
    public var sink: String
    public var reason: String
    public var attempts: Int
    public var event: ArraySlice<UInt8>
    /// The event's route (kept when it is retried instead).
    public var route: UInt8

    public init(sink: String, reason: String, attempts: Int, event: ArraySlice<UInt8>, route: UInt8 = 0) {
        self.sink = sink
        self.reason = reason
        self.attempts = attempts
        self.event = event
        self.route = route
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
    let logger: Logger
    let retryInterval: Duration
    let maxRetryInterval: Duration

    public init(
        pipe: String, target: any EventSink, logger: Logger, retryInterval: Duration = .milliseconds(500),
        maxRetryInterval: Duration = .seconds(30)
    ) {
        self.pipe = pipe
        self.target = target
        self.logger = logger
        self.retryInterval = retryInterval
        self.maxRetryInterval = maxRetryInterval
    }

    public var description: String { target.description }

    func open() async throws { try await target.open() }
    func close() async { await target.close() }

    func send(_ letters: [DeadLetter]) async throws {
        guard !letters.isEmpty else { return }
        var batch = EventBatch()
        let failedAt = Date().timeIntervalSince1970
        for letter in letters {
            Self.encode(letter, pipe: pipe, failedAt: failedAt, into: &batch.bytes)
            batch.endEvent()
        }
        var delay = retryInterval
        var pending = batch
        while true {
            do {
                let result = try await target.deliver([pending])
                if result.rejected.isEmpty { return }
                let reasons = Set(result.rejected.map(\.reason)).sorted().joined(separator: "; ")
                logger.error(
                    "dead-letter target \(target.description) refused \(result.rejected.count) records: \(reasons); retrying"
                )
                var retry = EventBatch()
                for rejection in result.rejected { retry.appendEvent(pending.event(at: rejection.event)) }
                pending = retry
            } catch {
                guard !Task.isCancelled else { throw error }
                logger.error("dead-letter target \(target.description) failed: \(error); retrying in \(delay)")
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
