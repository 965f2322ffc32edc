import BridgeCore
import Foundation
import Logging
import PostgresClient

/// Reconnection for the blocking source threads: exponential backoff with jitter and the session
/// loop the outbox and notify sources share.
enum Reconnect {
    /// 0.2 s doubling per attempt up to `maximum`, ±20 % jitter.
    static func delay(attempt: Int, maximum: Duration = .seconds(10)) -> Duration {
        let base = min(0.2 * pow(2, Double(min(max(attempt - 1, 0), 10))), maximum.seconds)
        return .milliseconds(Int64(base * 1000 * Double.random(in: 0.8...1.2)))
    }

    /// Runs `session` until `thread` is asked to stop: after a retriable error it waits with backoff and runs
    /// it again; any other error ends the queue with that error. `session` calls its argument
    /// once connected, which resets the backoff. `lostHint` says what a reconnect means for data.
    static func loop(
        _ thread: SourceThread, logger: Logger, what: String, lostHint: String,
        session: (_ connected: () -> Void) throws -> Void
    ) {
        var attempt = 0
        while !thread.stopRequested {
            do {
                try session { attempt = 0 }
            } catch let error as PostgresError where error.isRetriable {
                attempt += 1
                let wait = delay(attempt: attempt)
                logger.warning("\(what) failed: \(error.message); retrying in \(wait) (\(lostHint))")
                thread.pause(wait)
            } catch {
                logger.error("\(what) stopped: \(error)")
                thread.queue.finish(error: error)
                return
            }
        }
        thread.queue.finish()
    }
}
