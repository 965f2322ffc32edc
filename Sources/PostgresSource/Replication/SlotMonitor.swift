import BridgeCore
import Foundation
import Logging
import PostgresClient

/// Keeps a pipe's slot moving and watched, on a thread and a connection of its own:
/// - writes a heartbeat (`pg_logical_emit_message`, not transactional) every
///   `heartbeat_interval`, so that a slot whose tables are quiet still advances while other
///   tables of the database write WAL;
/// - checks the slot's lag every 10 s against `max_lag_bytes` and logs an error while it is
///   above (at most once a minute), and once when it is back under.
struct SlotMonitor {
    /// The prefix of heartbeat messages; the change assembler drops them (no event).
    static let heartbeatPrefix = "pgbridge.heartbeat"
    static let lagCheckInterval: Duration = .seconds(10)
    static let lagWarningInterval: Duration = .seconds(60)

    let pipe: String
    let config: ReplicationSourceConfig
    let postgres: PostgresConfig
    let logger: Logger

    var isNeeded: Bool { config.heartbeatInterval > .zero || config.maxLagBytes != nil }

    /// Runs until the pipe's source thread is asked to stop.
    func run(on thread: SourceThread) {
        var connection: PGConnection?
        let clock = ContinuousClock()
        var nextHeartbeat = clock.now + config.heartbeatInterval
        var nextLagCheck = clock.now + Self.lagCheckInterval
        var lastWarning: ContinuousClock.Instant?
        var connectionFailures = 0
        var heartbeatInterval = config.heartbeatInterval
        while thread.pause(.milliseconds(100)) {
            let now = clock.now
            let heartbeatDue = heartbeatInterval > .zero && now >= nextHeartbeat
            let lagDue = config.maxLagBytes != nil && now >= nextLagCheck
            guard heartbeatDue || lagDue else { continue }
            do {
                if connection == nil || connection?.isBroken == true {
                    connection = try PGConnection(url: postgres.url, mode: .normal, connectTimeout: 10)
                }
                connectionFailures = 0
            } catch {
                connection = nil
                connectionFailures += 1
                // The replication connection reports PostgreSQL being away; one line here is enough.
                if connectionFailures == 1 { logger.warning("slot monitor of \(config.slot): \(error) (retrying)") }
                nextHeartbeat = now + .seconds(1)
                nextLagCheck = now + .seconds(1)
                continue
            }
            guard let connection else { continue }
            if heartbeatDue {
                nextHeartbeat = now + heartbeatInterval
                do {
                    try connection.execute("SELECT pg_logical_emit_message(false, '\(Self.heartbeatPrefix)', '')")
                } catch let error as PostgresError where !connection.isBroken {
                    // Refused (no EXECUTE privilege, a server in recovery): retrying cannot help.
                    heartbeatInterval = .zero
                    logger.error(
                        "slot \(config.slot): heartbeats are off: \(error). Grant EXECUTE on pg_logical_emit_message to pgbridge's role, or set heartbeat_interval: 0"
                    )
                } catch {
                    nextHeartbeat = now + .seconds(1)
                }
            }
            if lagDue, let limit = config.maxLagBytes {
                nextLagCheck = now + Self.lagCheckInterval
                guard
                    let result = try? connection.execute(
                        """
                        SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn))::bigint
                        FROM pg_replication_slots WHERE slot_name = $1
                        """, [config.slot])
                else { continue }
                let lag = result.rowCount > 0 ? result.string(0, 0).flatMap { Int64($0) } : nil
                if let lag, lag > limit {
                    if lastWarning.map({ now - $0 >= Self.lagWarningInterval }) ?? true {
                        lastWarning = now
                        logger.error(
                            "slot \(config.slot) retains \(lag) bytes of WAL, more than max_lag_bytes (\(limit)): a sink is down or too slow, or the pipe is stopped. The database keeps this WAL on disk until pgbridge confirms it; fix the sink, or drop the slot with `pgbridge slots drop \(config.slot)` if the pipe is gone for good"
                        )
                    }
                } else if lastWarning != nil, let lag {
                    lastWarning = nil
                    logger.notice("slot \(config.slot) lag is back under max_lag_bytes: \(lag) bytes")
                }
            }
        }
    }
}
