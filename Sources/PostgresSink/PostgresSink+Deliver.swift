import BridgeCore
import Foundation
import PostgresClient

extension PostgresSink {
    /// One delivery in one target transaction; runs on the sink's queue.
    ///
    /// The delivery is planned in parts of about `partEvents` events while the parts are plain
    /// inserts: each part's rows go to the target by COPY, and the next part is planned while the
    /// target stores them. The first part that needs more (updates, deletes, several tables) is
    /// planned together with the rest of the delivery and applied as one.
    func deliver(_ batches: [EventBatch], _ state: Target) throws -> DeliveryResult {
        let sql = try connect(state)
        var outcome = DeliveryOutcome()
        var inFlight: DirectCopy?
        try sql.execute("BEGIN")
        var start = 0
        while start < batches.count {
            var end = start
            var events = 0
            while end < batches.count, events < partEvents {
                events += batches[end].eventCount
                end += 1
            }
            var plan = DeliveryPlan(
                mode: config.mode, template: config.table, defaultStream: source?.streamID ?? "")
            plan.add(batches, range: start..<end, applied: state.applied)
            var candidate = plan.isDirectCopyCandidate
            if !candidate, end < batches.count {
                plan.add(batches, range: end..<batches.count, applied: state.applied)
                end = batches.count
                candidate = plan.isDirectCopyCandidate
            }
            if let copy = inFlight {
                inFlight = nil
                outcome.rejected += try finish(copy, batches: batches, sql, state)
            }
            outcome.add(plan)
            for index in plan.tables.indices {
                let refused = try apply(
                    plan.tables[index], batches: batches, sql, state,
                    deferring: candidate ? plan : nil, inFlight: &inFlight)
                outcome.rejected += plan.rejections(refused)
            }
            start = end
        }
        if let copy = inFlight { outcome.rejected += try finish(copy, batches: batches, sql, state) }
        if outcome.duplicates > 0 {
            logger.info(
                "postgres sink \(sinkName): \(outcome.duplicates) event(s) came twice in one delivery (read again by the source): applied once",
                metadata: ["pipe": "\(pipe)"])
        }
        if outcome.skipped > 0 {
            logger.info(
                "postgres sink \(sinkName): \(outcome.skipped) event(s) were applied before (exactly once): not applied again",
                metadata: ["pipe": "\(pipe)"])
        }
        if outcome.messages > 0, state.warned.insert("messages").inserted {
            logger.warning(
                "postgres sink \(sinkName): logical messages have no table and are not applied; turn them off with source.messages: false",
                metadata: ["pipe": "\(pipe)"])
        }
        var applied = state.applied
        if let source {
            // Refused events stay pending: if they come again (a crash before they reached the
            // dead-letter target), they are not skipped.
            var refusedIDs: [String: [String]] = [:]
            for rejection in outcome.rejected {
                guard let id = Self.eventID(batches[rejection.batch], rejection.event) else { continue }
                refusedIDs[DeliveryPlan.stream(ofID: id, default: source.streamID), default: []].append(id)
            }
            for (stream, newest) in outcome.newest.sorted(by: { $0.key < $1.key }) {
                var positions = applied[stream]
                let pending =
                    positions.pending.filter { !outcome.replayedPending.contains($0) } + (refusedIDs[stream] ?? [])
                if pending.count > AppliedPositions.pendingLimit {
                    logger.warning(
                        "postgres sink \(sinkName): more than \(AppliedPositions.pendingLimit) refused events are pending; the oldest \(pending.count - AppliedPositions.pendingLimit) are forgotten (they were dead-lettered unless pgbridge crashed right after refusing them)",
                        metadata: ["pipe": "\(pipe)"])
                }
                positions.pending = Array(pending.suffix(AppliedPositions.pendingLimit))
                positions.position = max(newest, positions.position ?? newest)
                applied[stream] = positions
                try sql.execute(
                    SinkPositionsTable.write,
                    [pipe, sinkName, stream, positions.position!.description, SQL.textArray(positions.pending)])
            }
        }
        try sql.execute("COMMIT")
        state.applied = applied
        return DeliveryResult(rejected: outcome.rejected)
    }

    /// What the parts of one delivery add up to.
    struct DeliveryOutcome {
        var rejected: [Rejection] = []
        var newest: [String: SinkPosition] = [:]
        var skipped = 0
        var duplicates = 0
        var messages = 0
        var replayedPending: Set<String> = []

        mutating func add(_ plan: DeliveryPlan) {
            rejected += plan.rejected
            newest.merge(plan.newest) { max($0, $1) }
            skipped += plan.skipped
            duplicates += plan.duplicates
            messages += plan.messages
            replayedPending.formUnion(plan.replayedPending)
        }
    }

    /// A direct COPY whose rows are sent and whose result is read later (`finish`).
    struct DirectCopy {
        var plan: DeliveryPlan
        var work: DeliveryPlan.TableWork
        var target: TargetTable
        var key: [String]
        var missingReason: String
        /// Events carrying a column the target lacks (not copied).
        var carrying: [Int]
    }

    /// Reads the result of a direct COPY; when the target refused it (a key that exists), its
    /// rows are staged and upserted instead.
    func finish(_ copy: DirectCopy, batches: [EventBatch], _ sql: SQLConnection, _ state: Target) throws
        -> [Rejection]
    {
        do {
            try sql.connection.finishCopyIn()
            try sql.execute("RELEASE SAVEPOINT pgbridge_direct")
            return copy.plan.rejections(copy.carrying.map { ($0, copy.missingReason) })
        } catch let error as PostgresError where error.code == .queryFailed {
            try sql.execute("ROLLBACK TO SAVEPOINT pgbridge_direct")
            try sql.execute("RELEASE SAVEPOINT pgbridge_direct")
            let refused = try applyRows(
                copy.work.staged[...], work: copy.work, target: copy.target, key: copy.key, batches: batches,
                missingReason: copy.missingReason, sql, state, direct: false)
            return copy.plan.rejections(refused)
        }
    }

    static func eventID(_ batch: EventBatch, _ event: Int) -> String? {
        batch.bytes.withUnsafeBufferPointer { bytes in
            EventFields.scan(bytes, event: batch.eventRange(at: event)).id.map {
                String(decoding: bytes[$0], as: UTF8.self)
            }
        }
    }
}
