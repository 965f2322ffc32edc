import BridgeCore
import Foundation
import Logging
import PostgresClient
import Synchronization

/// A one-shot source for `pgbridge snapshot PIPE TABLE`: reads one table (a hypertable chunk by
/// chunk) under a fresh REPEATABLE READ snapshot as `read` events, then finishes. The events'
/// `commit_lsn` is the server's WAL position when the snapshot was taken.
public final class TableSnapshotSource: ThreadedChangeSource {
    let table: TablePattern
    let config: ReplicationSourceConfig
    let postgres: PostgresConfig
    let logger: Logger
    public let thread = SourceThread(name: "pgbridge-table-snapshot")
    private let rows = Atomic<Int>(0)

    public init(table: TablePattern, config: ReplicationSourceConfig, postgres: PostgresConfig, logger: Logger) {
        self.table = table
        self.config = config
        self.postgres = postgres
        self.logger = logger
    }

    /// Rows read so far.
    public var rowCount: Int { rows.load(ordering: .relaxed) }

    public func start() async throws {
        thread.start { [self] in
            do {
                try read()
                thread.queue.finish()
            } catch {
                thread.queue.finish(error: error)
            }
        }
    }

    private func read() throws {
        let reader = try PGConnection(url: postgres.url, mode: .normal)
        try reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        let catalog = CaptureCatalog(connection: reader)
        let database = try catalog.currentDatabase()
        let (tables, missing) = try catalog.resolve([table], configPath: "the snapshot command's TABLE argument")
        guard missing.isEmpty, !tables.isEmpty else {
            throw PostgresError(.prerequisite, missing.first ?? "table \(table) does not exist")
        }
        let point = try reader.execute("SELECT pg_current_wal_lsn()::text").string(0, 0).flatMap { LSN($0) } ?? .zero
        let state = try catalog.timescaleState()
        let planned = try catalog.snapshotPlan(
            tables: tables, hypertables: try catalog.hypertables(among: tables, state: state),
            range: config.snapshotRange,
            state: state, continuousAggregates: config.continuousAggregates)
        let units = try catalog.lockUnits(planned) { logger.warning("\($0)") }
        var encoder = NativeEncoder(database: database)
        let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let context = TransactionContext(
            commitLSN: point, xid: 0, commitTime: PostgresTime.fromUnixMicroseconds(nowMicros), capture: .snapshot)
        var batch = EventBatch()
        var sequence: UInt64 = 0
        var ordinal = 0
        func handOut() {
            sequence += 1
            batch.sequence = sequence
            thread.put(batch)
            batch = EventBatch()
        }
        for unit in units {
            let finished = try SnapshotCursor.read(
                unit, on: reader, resumeKey: nil, batchRows: config.snapshotBatchRows,
                onRow: { row in
                    encoder.encode(
                        RowChange(op: .read, relation: unit.relation, lsn: point, ordinal: ordinal, new: row),
                        in: context,
                        into: &batch.bytes)
                    batch.endEvent()
                    ordinal += 1
                    if batch.bytes.count >= 1 << 20 { handOut() }
                },
                afterFetch: { count, _ in
                    rows.add(count, ordering: .relaxed)
                    return !thread.stopRequested
                })
            if !finished { break }
        }
        if !batch.isEmpty { handOut() }
        try reader.execute("COMMIT")
        logger.info("table snapshot read \(ordinal) rows", metadata: ["table": "\(table)", "commit_lsn": "\(point)"])
    }
}
