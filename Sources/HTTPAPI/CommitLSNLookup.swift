import BridgeCore
import Logging
import PostgresClient
import Synchronization

/// Finds a committed transaction's commit LSN with pg_walinspect (installed by `pgbridge setup`
/// as a superuser; the login role needs `pg_read_server_files`). Without it, writes carry no
/// X-Commit-LSN and one warning says why.
final class CommitLSNLookup: Sendable {
    /// After pg_walinspect was not usable, the lookup is off until this instant, then tried
    /// again: a `pgbridge setup` or a GRANT made later takes effect without a restart.
    private let offUntil = Mutex<ContinuousClock.Instant?>(nil)
    let recheckInterval: Duration
    let logger: Logger

    init(logger: Logger, recheckInterval: Duration = .seconds(60)) {
        self.logger = logger
        self.recheckInterval = recheckInterval
    }

    /// Whether lookups are off at `now` (pg_walinspect was not usable less than
    /// `recheckInterval` ago).
    func isOff(at now: ContinuousClock.Instant = .now) -> Bool {
        offUntil.withLock { until in until.map { now < $0 } ?? false }
    }

    /// Records that pg_walinspect is not usable; true when it was usable (or untried) before,
    /// so the warning is logged once per outage, not once a minute.
    func markUnusable(at now: ContinuousClock.Instant = .now) -> Bool {
        offUntil.withLock { until in
            defer { until = now + recheckInterval }
            return until == nil
        }
    }

    /// Records a lookup that worked; true when it had been off.
    func markUsable() -> Bool {
        offUntil.withLock { until in
            defer { until = nil }
            return until != nil
        }
    }

    func find(_ connection: SQLConnection, start: String, xid: String) -> String? {
        if isOff() { return nil }
        do {
            // In its own short transaction: a busy server's WAL is not read for long.
            let start = try connection.literal(start)
            let xid = try connection.literal(xid)
            let result = try connection.execute(
                """
                BEGIN READ ONLY; SET LOCAL statement_timeout = 2000; \
                SELECT start_lsn::text FROM pg_get_wal_records_info(\(start)::pg_lsn, pg_current_wal_flush_lsn()) \
                WHERE xid = \(xid)::xid AND resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' \
                ORDER BY start_lsn DESC LIMIT 1
                """)
            let lsn = result.string(0, 0)
            try connection.execute("COMMIT")
            if markUsable() { logger.info("writes carry X-Commit-LSN again: pg_walinspect is usable now") }
            return lsn
        } catch {
            _ = try? connection.execute("ROLLBACK")
            let state = (error as? PostgresError)?.sqlState
            if state == "42883" || state == "42501" || state == "3F000" {
                if markUnusable() {
                    logger.warning(
                        "writes carry no X-Commit-LSN: pg_walinspect is not usable (\(error)). Run `pgbridge setup` as a superuser and GRANT pg_read_server_files to pgbridge's login role; pgbridge tries again every \(recheckInterval.components.seconds)s"
                    )
                }
            } else {
                logger.debug("no X-Commit-LSN for a write: \(error)")
            }
            return nil
        }
    }
}
