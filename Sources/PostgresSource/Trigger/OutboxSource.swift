import BridgeCore
import Foundation
import Logging
import PostgresClient

/// Reads `pgbridge.outbox` (rows written by `pgbridge.capture()` in the changing transaction).
///
/// A listener connection LISTENs on the channels; a worker connection drains the outbox in id
/// order on every wake-up, on (re)connect and every `poll_interval`: it claims up to
/// `batch_rows` rows (`FOR UPDATE SKIP LOCKED`, so replicas never deliver a row concurrently),
/// hands them to the pipe, waits until every sink acknowledged them, then deletes them and
/// commits. A crash before the commit releases the rows for the next drain: at least once.
public final class OutboxSource: ThreadedChangeSource {
    let config: OutboxSourceConfig
    let postgres: PostgresConfig
    let logger: Logger
    public let thread = SourceThread(name: "pgbridge-outbox")
    /// Every channel some outbox pipe of this pgbridge listens to: rows on other channels are
    /// never delivered, which is said in the log (see `warnAboutUnreadChannels`).
    let listenedChannels: Set<String>

    /// `listenedChannels`: the channels of every outbox pipe of the configuration (this one's
    /// when nil).
    public init(
        pipeName: String, config: OutboxSourceConfig, postgres: PostgresConfig, listenedChannels: Set<String>? = nil,
        logger: Logger
    ) {
        self.listenedChannels = listenedChannels ?? Set(config.channels)
        self.config = config
        self.postgres = postgres
        self.logger = logger.forPipe(pipeName)
    }

    public func start() async throws {
        // Fail fast with a clear message when the objects are missing.
        let postgres = self.postgres
        try await Blocking.run {
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            guard try connection.execute("SELECT to_regclass('pgbridge.outbox') IS NOT NULL").string(0, 0) == "t" else {
                throw PostgresError(
                    .prerequisite,
                    "table pgbridge.outbox does not exist: run `pgbridge setup` (or CREATE EXTENSION pgbridge), "
                        + "then SELECT pgbridge.watch('schema.table') for each table to capture")
            }
        }
        thread.start { [self] in run() }
    }

    // MARK: - Thread

    private func run() {
        var sequence: UInt64 = 0
        var warnedChannels: Set<String> = []  // once per channel and process
        var nextUnreadCheck = ContinuousClock.now  // at most once per poll interval, not per wake-up
        Reconnect.loop(
            thread, logger: logger, what: "outbox drain", lostHint: "unacknowledged rows stay in the outbox"
        ) { connected in
            let listener = try PGConnection(url: postgres.url, mode: .normal)
            for channel in config.channels { try listener.execute("LISTEN \(SQL.identifier(channel))") }
            let worker = try PGConnection(url: postgres.url, mode: .normal)
            // The claim transaction stays open until the sinks acknowledge: never time it out.
            try worker.execute("SET idle_in_transaction_session_timeout = 0")
            connected()
            logger.info("listening for outbox events", metadata: ["channels": "\(config.channels)"])
            while !thread.stopRequested {
                // Drain on (re)connect, on a wake-up and on the timer.
                try drain(worker, listener: listener, sequence: &sequence)
                if ContinuousClock.now >= nextUnreadCheck {
                    nextUnreadCheck = ContinuousClock.now + config.pollInterval
                    try warnAboutUnreadChannels(worker, warned: &warnedChannels)
                }
                let nextPoll = ContinuousClock.now + config.pollInterval
                while !thread.stopRequested && ContinuousClock.now < nextPoll {
                    listener.waitReadable(timeout: .milliseconds(100))
                    if !(try listener.notifications()).isEmpty { break }
                }
            }
        }
    }

    /// Rows that wait (longer than two poll intervals) on a channel no outbox pipe of this
    /// pgbridge listens to stay in the outbox for good: a watch() on a channel missing from
    /// `channels`. Said once per channel, at warning level, with the fix.
    private func warnAboutUnreadChannels(_ worker: PGConnection, warned warnedChannels: inout Set<String>) throws {
        let age = max(config.pollInterval * 2, .seconds(1))
        let result = try worker.execute(
            """
            SELECT channel, count(*), min(created_at)::text FROM pgbridge.outbox
            WHERE channel <> ALL($1::text[]) AND created_at < now() - make_interval(secs => $2)
            GROUP BY channel ORDER BY channel
            """, [SQL.textArray(listenedChannels.sorted()), String(age.seconds)])
        for row in 0..<result.rowCount {
            guard let channel = result.string(row, 0), !warnedChannels.contains(channel) else { continue }
            warnedChannels.insert(channel)
            logger.warning(
                Logger.Message(
                    stringLiteral:
                        "\(result.string(row, 1) ?? "?") rows of pgbridge.outbox wait on channel \(channel)"
                        + ", which no pipe of this pgbridge listens to"
                        + " (the oldest since \(result.string(row, 2) ?? "?")): add it to a pipe's source.channels,"
                        + " or unwatch the tables that write to it (SELECT pgbridge.unwatch('schema.table'))"))
        }
    }

    /// Claims, delivers and deletes outbox rows until none is left.
    private func drain(_ worker: PGConnection, listener: PGConnection, sequence: inout UInt64) throws {
        let channels = SQL.textArray(config.channels)
        let drainLock = SQL.literal("pgbridge outbox " + config.channels.sorted().joined(separator: ","))
        while !thread.stopRequested {
            try worker.execute("BEGIN")
            // One drainer per channel set at a time: replicas keep per-key order (a second replica
            // delivering newer rows while the first still holds older ones would reorder a key).
            guard try worker.execute("SELECT pg_try_advisory_xact_lock(hashtext(\(drainLock)))").string(0, 0) == "t"
            else {
                try worker.execute("COMMIT")
                return
            }
            let rows = try worker.execute(
                """
                SELECT id, event::text FROM pgbridge.outbox WHERE channel = ANY($1::text[])
                ORDER BY id LIMIT \(config.batchRows) FOR UPDATE SKIP LOCKED
                """, [channels])
            if rows.rowCount == 0 {
                try worker.execute("COMMIT")
                return
            }
            var batch = EventBatch()
            var ids: [String] = []
            ids.reserveCapacity(rows.rowCount)
            for row in 0..<rows.rowCount {
                guard let id = rows.string(row, 0) else { continue }
                ids.append(id)
                rows.withValue(row, 1) { event in
                    guard let event, event.count >= 2, event[0] == UInt8(ascii: "{") else { return }
                    // The stored event plus its stable id: "outbox:<row id>".
                    JSONBytes.appendRaw("{\"id\":\"outbox:", into: &batch.bytes)
                    batch.bytes.append(contentsOf: id.utf8)
                    batch.bytes.append(UInt8(ascii: "\""))
                    if event.count > 2 { batch.bytes.append(UInt8(ascii: ",")) }
                    JSONBytes.appendRawJSON(UnsafeRawBufferPointer(rebasing: event[1...]), into: &batch.bytes)
                    batch.endEvent()
                }
            }
            sequence += 1
            batch.sequence = sequence
            thread.put(batch)
            // Delete only what every sink acknowledged; the row locks keep other replicas away meanwhile.
            while thread.waitForAcknowledgement(through: sequence, timeout: .milliseconds(100)) != .acknowledged {
                if thread.finishRequested {
                    _ = try? worker.execute("ROLLBACK")
                    return
                }
                // Keep reading wake-ups so the server's notification queue does not back up; the
                // drain continues until the outbox is empty anyway.
                _ = try? listener.notifications()
            }
            try worker.execute(
                "DELETE FROM pgbridge.outbox WHERE id = ANY($1::bigint[])", ["{" + ids.joined(separator: ",") + "}"])
            try worker.execute("COMMIT")
        }
    }
}
