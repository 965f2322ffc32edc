import BridgeCore
import Foundation
import PostgresClient

extension PostgresSink {
    /// One delivery in one target transaction; runs on the sink's queue.
    func deliver(_ batches: [EventBatch], _ state: Target) throws -> DeliveryResult {
        let sql = try connect(state)
        var plan = DeliveryPlan(mode: config.mode, template: config.table)
        plan.add(batches, applied: state.applied)
        if plan.skipped > 0 {
            logger.info(
                "postgres sink \(sinkName): \(plan.skipped) event(s) were applied before (exactly once): not applied again",
                metadata: ["pipe": "\(pipe)"])
        }
        if plan.messages > 0, state.warned.insert("messages").inserted {
            logger.warning(
                "postgres sink \(sinkName): logical messages have no table and are not applied; turn them off with source.messages: false",
                metadata: ["pipe": "\(pipe)"])
        }
        var refused: [(seq: Int, reason: String)] = []
        try sql.execute("BEGIN")
        if plan.stagedRows > 0 {
            try sql.connection.copyIn(ApplyStatements.copyStage, data: plan.copy.bytes)
        }
        for index in plan.tables.indices {
            refused += try apply(plan.tables[index], tbl: index, sql, state)
        }
        var rejected = plan.rejected
        for (seq, reason) in refused {
            let (batch, event) = plan.events[seq]
            rejected.append(Rejection(batch: batch, event: event, reason: reason, isPermanent: true))
        }
        var applied = state.applied
        if let source, let newest = plan.newest {
            var pending = applied.pending.filter { !plan.replayedPending.contains($0) }
            for (seq, _) in refused {
                let (batch, event) = plan.events[seq]
                if let id = Self.eventID(batches[batch], event) { pending.append(id) }
            }
            applied.pending = Array(pending.suffix(AppliedPositions.pendingLimit))
            applied.position = max(newest, applied.position ?? newest)
            try sql.execute(
                SinkPositionsTable.write,
                [
                    pipe, sinkName, source.streamID, applied.position!.description,
                    PostgresArray.literal(applied.pending),
                ])
        }
        try sql.execute("COMMIT")
        state.applied = applied
        return DeliveryResult(rejected: rejected)
    }

    static func eventID(_ batch: EventBatch, _ event: Int) -> String? {
        batch.bytes.withUnsafeBufferPointer { bytes in
            EventFields.scan(bytes, event: batch.eventRange(at: event)).id.map {
                String(decoding: bytes[$0], as: UTF8.self)
            }
        }
    }

    /// Applies one table's staged rows; returns the events the target refused (by seq).
    func apply(_ work: DeliveryPlan.TableWork, tbl: Int, _ sql: SQLConnection, _ state: Target) throws
        -> [(seq: Int, reason: String)]
    {
        func refuseAll(_ reason: String) -> [(seq: Int, reason: String)] { work.seqs.map { ($0, reason) } }
        let qualified = TargetTable.qualified(schema: work.schema, name: work.name)
        if state.isSourceDatabase, (work.schema ?? "public") == work.sourceSchema, work.name == work.sourceTable {
            return refuseAll(
                "\(qualified) is the source table itself (a loop): set the sink's table to another name or url to another database"
            )
        }
        guard var target = try targetTable(work, sql, state) else {
            return refuseAll(
                "target table \(qualified) does not exist: create it (like the source table) or set create_tables: true"
            )
        }
        var missing = work.columns.filter { target.column($0) == nil }
        if config.mode == .append, config.columns == .json { missing = [] }
        if !missing.isEmpty, config.onNewColumn == .add {
            try addColumns(missing, to: target, work: work, sql)
            state.tables[qualified] = nil
            guard let reloaded = try targetTable(work, sql, state) else { return refuseAll("\(qualified) vanished") }
            target = reloaded
            missing = work.columns.filter { target.column($0) == nil }
        }
        let columns = work.columns.compactMap { target.column($0) }
        var refused: [(seq: Int, reason: String)] = []
        var seqs = work.seqs
        if !missing.isEmpty {
            let list = missing.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }.joined(separator: ", ")
            let carrying = try sql.execute(
                """
                SELECT seq FROM pg_temp.pgbridge_stage WHERE tbl = \(tbl) AND (after ?| ARRAY[\(list)]::text[]
                  OR before ?| ARRAY[\(list)]::text[])
                """)
            let bad = Set((0..<carrying.rowCount).compactMap { carrying.string($0, 0).flatMap(Int.init) })
            let names = missing.joined(separator: ", ")
            for seq in bad {
                refused.append(
                    (
                        seq,
                        "\(qualified) has no column \(names): add it to the target (ALTER TABLE \(qualified) ADD COLUMN …) or set on_new_column: add"
                    ))
            }
            try sql.execute(
                "DELETE FROM pg_temp.pgbridge_stage WHERE tbl = \(tbl) AND seq = ANY($1::int[])",
                [
                    "{" + bad.map(String.init).joined(separator: ",") + "}"
                ])
            seqs.removeAll { bad.contains($0) }
        }
        var key: [String] = []
        if config.mode == .apply, work.hasUpserts || work.hasDeletes {
            guard let unique = target.uniqueKey(matching: work.keyColumns) else {
                let wanted = work.keyColumns.map(TargetTable.quote).joined(separator: ", ")
                return refuseAll(
                    "\(qualified) has no primary key or unique index on (\(wanted)), the source's key: add one, e.g. ALTER TABLE \(qualified) ADD PRIMARY KEY (\(wanted))"
                )
            }
            key = unique
        }
        if config.mode == .apply, let truncate = work.truncate {
            try sql.execute(
                ApplyStatements.truncate(target, cascade: truncate.cascade, restartIdentity: truncate.restartIdentity))
            seqs.removeAll { $0 <= truncate.seq }
        }
        let statements = applyStatements(work, tbl: tbl, target: target, key: key, columns: columns)
        if !seqs.isEmpty, !statements.isEmpty {
            refused += try applyRange(seqs[...], statements: statements, table: qualified, sql)
        }
        if config.mode == .apply { try dropChunks(work, target: target, sql, state) }
        return refused
    }

    func applyStatements(
        _ work: DeliveryPlan.TableWork, tbl: Int, target: TargetTable, key: [String], columns: [TargetTable.Column]
    ) -> [String] {
        switch config.mode {
        case .append:
            switch config.columns {
            case .json: return [ApplyStatements.appendJSON(target, tbl: tbl)]
            case .flatten:
                let own = columns.filter { !ApplyStatements.flatMetadata.contains($0.name) }
                return [ApplyStatements.appendFlat(target, tbl: tbl, columns: own)]
            }
        case .apply:
            // Updates with unchanged TOAST columns first: they may read the row of an old key,
            // which the deletes remove. Keys are disjoint between the statements (one last
            // change per key), so the order changes nothing else.
            var statements: [String] = []
            if work.hasUpserts {
                for (index, unchanged) in work.unchangedSets.enumerated() {
                    var withUnchanged = columns
                    for name in unchanged where !withUnchanged.contains(where: { $0.name == name }) {
                        if let column = target.column(name) { withUnchanged.append(column) }
                    }
                    statements.append(
                        ApplyStatements.upsertUnchanged(
                            target, tbl: tbl, key: key, columns: withUnchanged, unchanged: unchanged, uset: index + 1))
                }
            }
            if work.hasDeletes { statements.append(ApplyStatements.delete(target, tbl: tbl, key: key)) }
            if work.hasUpserts {
                statements.append(ApplyStatements.upsert(target, tbl: tbl, key: key, columns: columns))
            }
            return statements
        }
    }

    /// Runs `statements` over the seq range of `seqs` in a savepoint; when the target refuses a
    /// row (a constraint, a value, a permission), the range is split in halves until the
    /// refused events are found. The rest is applied.
    func applyRange(_ seqs: ArraySlice<Int>, statements: [String], table: String, _ sql: SQLConnection) throws
        -> [(seq: Int, reason: String)]
    {
        guard let first = seqs.first, let last = seqs.last else { return [] }
        try sql.execute("SAVEPOINT pgbridge_range")
        do {
            for statement in statements { try sql.execute(statement, [String(first), String(last)]) }
            try sql.execute("RELEASE SAVEPOINT pgbridge_range")
            return []
        } catch let error as PostgresError where Self.refusesRows(error) {
            try sql.execute("ROLLBACK TO SAVEPOINT pgbridge_range")
            try sql.execute("RELEASE SAVEPOINT pgbridge_range")
            guard seqs.count > 1 else {
                return [(first, "\(table) refused the change: SQLSTATE \(error.sqlState ?? "?"): \(error.message)")]
            }
            let middle = seqs.startIndex + seqs.count / 2
            return try applyRange(seqs[..<middle], statements: statements, table: table, sql)
                + applyRange(seqs[middle...], statements: statements, table: table, sql)
        }
    }

    /// Errors that belong to rows, not to the target as a whole: data exceptions (22),
    /// integrity constraints (23), a refused privilege (42501), a type mismatch (42804), a
    /// trigger's RAISE (P0001).
    static func refusesRows(_ error: PostgresError) -> Bool {
        guard error.code == .queryFailed, let state = error.sqlState else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23") || ["42501", "42804", "P0001"].contains(state)
    }

    func targetTable(_ work: DeliveryPlan.TableWork, _ sql: SQLConnection, _ state: Target) throws -> TargetTable? {
        let qualified = TargetTable.qualified(schema: work.schema, name: work.name)
        if let known = state.tables[qualified] { return known }
        var table = try TargetTable.load(schema: work.schema, name: work.name, sql)
        if table == nil, config.createTables {
            try createTable(work, sql)
            table = try TargetTable.load(schema: work.schema, name: work.name, sql)
        }
        state.tables[qualified] = table
        return table
    }

    /// `drop_chunks` on the target for each `chunk_dropped` (with `on_chunk_dropped: drop`),
    /// else a warning once per table.
    func dropChunks(_ work: DeliveryPlan.TableWork, target: TargetTable, _ sql: SQLConnection, _ state: Target) throws {
        guard let newest = work.droppedChunks.max(by: { $0.seq < $1.seq }) else { return }
        switch config.onChunkDropped {
        case .ignore:
            if state.warned.insert("chunk:\(target.qualified)").inserted {
                logger.warning(
                    "postgres sink \(sinkName): retention dropped chunks of \(work.sourceSchema).\(work.sourceTable) on the source; \(target.qualified) keeps its rows (on_chunk_dropped: ignore). Set on_chunk_dropped: drop to mirror retention",
                    metadata: ["pipe": "\(pipe)"])
            }
        case .drop:
            for chunk in work.droppedChunks {
                let bound = chunk.rangeEnd.replacingOccurrences(of: "'", with: "''")
                let older = Int64(bound) != nil ? bound : "'\(bound)'::timestamptz"
                try sql.execute(
                    "SELECT drop_chunks(\(try sql.literal(target.qualified))::regclass, older_than => \(older))")
            }
            logger.info(
                "postgres sink \(sinkName): dropped chunks of \(target.qualified) older than \(newest.rangeEnd) (mirrored retention)",
                metadata: ["pipe": "\(pipe)"])
        }
    }
}
