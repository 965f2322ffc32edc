import BridgeCore
import Foundation
import Logging
import PostgresClient

/// Reconnection for the blocking source threads: exponential backoff with jitter, sleeps that
/// notice a stop request, and the session loop the outbox and notify sources share.
enum Reconnect {
    /// 0.2 s doubling per attempt up to `maximum`, ±20 % jitter.
    static func delay(attempt: Int, maximum: Duration = .seconds(10)) -> Duration {
        let base = min(0.2 * pow(2, Double(min(max(attempt - 1, 0), 10))), maximum.seconds)
        return .milliseconds(Int64(base * 1000 * Double.random(in: 0.8...1.2)))
    }

    /// Sleeps `duration` in small steps, returning early once `stopped()` is true.
    static func pause(_ duration: Duration, until stopped: () -> Bool) {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline && !stopped() {
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Runs `session` until `stopped()`: after a retriable error it waits with backoff and runs
    /// it again; any other error ends the queue with that error. `session` calls its argument
    /// once connected, which resets the backoff. `lostHint` says what a reconnect means for data.
    static func loop(
        queue: BatchQueue, logger: Logger, what: String, lostHint: String, stopped: () -> Bool,
        session: (_ connected: () -> Void) throws -> Void
    ) {
        var attempt = 0
        while !stopped() {
            do {
                try session { attempt = 0 }
            } catch let error as PostgresError where error.isRetriable {
                attempt += 1
                let wait = delay(attempt: attempt)
                logger.warning("\(what) failed: \(error.message); retrying in \(wait) (\(lostHint))")
                pause(wait, until: stopped)
            } catch {
                logger.error("\(what) stopped: \(error)")
                queue.finish(error: error)
                return
            }
        }
        queue.finish()
    }
}
