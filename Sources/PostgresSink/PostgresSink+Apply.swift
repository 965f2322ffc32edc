import BridgeCore
import Foundation
import PostgresClient

extension PostgresSink {
    /// Applies one table's events; returns the events the target refused (by seq). With
    /// `deferring` (the plan the work belongs to), a direct COPY is left in flight (`inFlight`).
    func apply(
        _ work: DeliveryPlan.TableWork, batches: [EventBatch], _ sql: SQLConnection, _ state: Target,
        deferring: DeliveryPlan? = nil, inFlight: inout DirectCopy?
    ) throws -> [(seq: Int, reason: String)] {
        let qualified = TargetTable.qualified(schema: work.schema, name: work.name)
        func refuseAll(_ reason: String) -> [(seq: Int, reason: String)] {
            (work.staged.map(\.seq) + (work.truncate.map { [$0.seq] } ?? []) + work.droppedChunks.map(\.seq)).map {
                ($0, reason)
            }
        }
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
        let metadata = Set(
            config.mode == .append ? (config.columns == .json ? [] : ApplyStatements.flatMetadata) : [])
        var missing = work.columns.filter { target.column($0) == nil && !metadata.contains($0) }
        if config.mode == .append, config.columns == .json { missing = [] }
        if !missing.isEmpty, config.onNewColumn == .add {
            try addColumns(missing, to: target, work: work, sql)
            state.tables[qualified] = nil
            guard let reloaded = try targetTable(work, sql, state) else { return refuseAll("\(qualified) vanished") }
            target = reloaded
            missing = work.columns.filter { target.column($0) == nil }
        }
        var key: [String] = []
        if config.mode == .apply, !work.staged.isEmpty {
            guard let unique = target.uniqueKey(matching: work.keyColumns) else {
                let wanted = work.keyColumns.map(SQL.identifier).joined(separator: ", ")
                return refuseAll(
                    "\(qualified) has no primary key or unique index on (\(wanted)), the source's key: add one, e.g. ALTER TABLE \(qualified) ADD PRIMARY KEY (\(wanted))"
                )
            }
            key = unique
        }
        var staged = work.staged[...]
        var refused: [(seq: Int, reason: String)] = []
        if config.mode == .apply, let truncate = work.truncate {
            // A truncate the target refuses (a table referenced by foreign keys) is dead-lettered;
            // the changes after it still apply.
            refused += try applyRange([truncate.seq], table: target.qualified, sql, refusing: { _ in true }) { _, _ in
                try sql.execute(
                    ApplyStatements.truncate(
                        target, cascade: truncate.cascade, restartIdentity: truncate.restartIdentity))
            }
            staged = staged.drop { $0.seq <= truncate.seq }
        }
        if !staged.isEmpty {
            let missingReason =
                "\(qualified) has no column \(missing.joined(separator: ", ")): add it to the target (ALTER TABLE \(qualified) ADD COLUMN …) or set on_new_column: add"
            switch config.mode {
            case .apply:
                if let plan = deferring {
                    let rows = rowsToStage(work, target: target, key: key)
                    if let carrying = try copyInsertsDirectly(
                        staged, work: work, target: target, rows: rows, batches: batches, sql, wait: false)
                    {
                        inFlight = DirectCopy(
                            plan: plan, work: work, target: target, key: key, missingReason: missingReason,
                            carrying: carrying)
                        return refused
                    }
                }
                refused += try applyRows(
                    staged, work: work, target: target, key: key, batches: batches, missingReason: missingReason, sql,
                    state, direct: deferring == nil)
            case .append:
                refused += try appendRows(
                    staged, work: work, target: target, batches: batches, missingReason: missingReason, sql)
            }
        }
        if config.mode == .apply, !work.droppedChunks.isEmpty {
            // drop_chunks on a target without TimescaleDB (or without the chunks) is dead-lettered.
            let seqs = work.droppedChunks.map(\.seq)
            let failed = try applyRange([seqs[0]], table: target.qualified, sql, refusing: { _ in true }) { _, _ in
                try dropChunks(work, target: target, sql, state)
            }
            if let failure = failed.first {
                refused += seqs.map { ($0, failure.reason) }
            }
        }
        return refused
    }

    /// Stages the rows (COPY into a temporary table typed like the target) and applies them.
    func applyRows(
        _ staged: ArraySlice<DeliveryPlan.Staged>, work: DeliveryPlan.TableWork, target: TargetTable, key: [String],
        batches: [EventBatch], missingReason: String, _ sql: SQLConnection, _ state: Target, direct: Bool = true
    ) throws -> [(seq: Int, reason: String)] {
        let rows = rowsToStage(work, target: target, key: key)
        let columns = rows.columns
        if direct,
            let applied = try copyInsertsDirectly(staged, work: work, target: target, rows: rows, batches: batches, sql)
        {
            return applied.map { ($0, missingReason) }
        }
        let stage = try stageTable(target, columns: columns, sql, state)
        let copyStatement = ApplyStatements.copy(
            into: stage, columns: ["seq", "op", "uset", "oldkey"] + columns.map { SQL.identifier($0.name) })
        // Staging already converts values to the target's types: a value the type refuses (too
        // long, not a uuid, no such enum label) fails the COPY, which is split like the apply.
        var carrying: Set<Int> = []
        let refusedStaging = try applyRange(staged.map(\.seq)[...], table: target.qualified, sql) { first, last in
            let range = staged.filter { $0.seq >= first && $0.seq <= last && !carrying.contains($0.seq) }
            try sql.connection.copyIn(copyStatement) { send in
                var copy = CopyText()
                carrying.formUnion(try rows.apply(range[...], batches: batches, into: &copy) { try send($0[...]) })
                try send(copy.bytes[...])
            }
        }
        let notStaged = carrying.union(refusedStaging.map(\.seq))
        let statements = ApplyStatements(
            target: target, stage: stage, columns: columns, key: key, repeatsKeys: work.repeatsKeys)
        var list: [String] = []
        // Updates with unchanged TOAST columns first: they may read the row of an old key, which
        // the deletes remove. Keys are disjoint between the statements (one last change per key).
        var containing: [String: [Int]] = [:]
        for (index, set) in work.unchangedSets.enumerated() {
            for name in set { containing[name, default: []].append(index + 1) }
        }
        for (index, set) in work.unchangedSets.enumerated() {
            list.append(statements.upsertUnchanged(uset: index + 1, unchanged: Set(set), containing: containing))
        }
        if work.hasDeletes { list.append(statements.delete) }
        if work.hasUpserts { list.append(statements.upsert) }
        let seqs = staged.map(\.seq).filter { !notStaged.contains($0) }
        return carrying.map { ($0, missingReason) } + refusedStaging
            + (try applyRange(seqs[...], table: target.qualified, sql) { first, last in
                for statement in list { try sql.execute(statement, [String(first), String(last)]) }
            })
    }

    /// The stage's columns: the key, then every column of the events the target has.
    func rowsToStage(_ work: DeliveryPlan.TableWork, target: TargetTable, key: [String]) -> StageRows {
        var names = key
        for name in work.columns + work.unchangedSets.flatMap({ $0 }) where !names.contains(name) {
            if target.column(name) != nil { names.append(name) }
        }
        return StageRows(columns: names.compactMap { target.column($0) }, mode: .apply, work: work)
    }

    /// A delivery of only inserts, each key once (a backlog, a time series): COPY straight into
    /// the target, in a savepoint. When a key exists already (a re-read snapshot row, a replayed
    /// insert) or the target refuses a row, nil: the caller stages and upserts as usual. Returns
    /// the events carrying a column the target lacks (not copied). Without `wait`, the rows are
    /// sent and the result is left for `finish` (nothing else may run on the connection before).
    func copyInsertsDirectly(
        _ staged: ArraySlice<DeliveryPlan.Staged>, work: DeliveryPlan.TableWork, target: TargetTable,
        rows: StageRows, batches: [EventBatch], _ sql: SQLConnection, wait: Bool = true
    ) throws -> [Int]? {
        guard work.isInsertsOnly else { return nil }
        var carrying: [Int] = []
        try sql.execute("SAVEPOINT pgbridge_direct")
        do {
            let columns = rows.columns.map { SQL.identifier($0.name) }
            var sent = false
            if config.copyFormat == .binary, let kinds = rows.binaryKinds {
                do {
                    try sql.connection.startCopyIn(
                        ApplyStatements.copy(into: target.qualified, columns: columns, binary: true)
                    ) { send in
                        carrying = try rows.binaryRows(staged, kinds: kinds, batches: batches) { try send($0[...]) }
                    }
                    sent = true
                } catch is CopyBinary.Unconvertible {
                    // A value in a form only the target's text input reads (`"NaN"`, a local
                    // time): these rows go as text, where the target converts or refuses it.
                    try sql.execute("ROLLBACK TO SAVEPOINT pgbridge_direct")
                }
            }
            if !sent {
                try sql.connection.startCopyIn(ApplyStatements.copy(into: target.qualified, columns: columns)) { send in
                    var copy = CopyText()
                    carrying = try rows.apply(staged, batches: batches, into: &copy, columnsOnly: true) {
                        try send($0[...])
                    }
                    try send(copy.bytes[...])
                }
            }
            guard wait else { return carrying }
            try sql.connection.finishCopyIn()
            try sql.execute("RELEASE SAVEPOINT pgbridge_direct")
            return carrying
        } catch let error as PostgresError where error.code == .queryFailed {
            try sql.execute("ROLLBACK TO SAVEPOINT pgbridge_direct")
            try sql.execute("RELEASE SAVEPOINT pgbridge_direct")
            return nil
        }
    }

    /// `append`: COPY straight into the target table (a refused range is split and copied again).
    func appendRows(
        _ staged: ArraySlice<DeliveryPlan.Staged>, work: DeliveryPlan.TableWork, target: TargetTable,
        batches: [EventBatch], missingReason: String, _ sql: SQLConnection
    ) throws -> [(seq: Int, reason: String)] {
        let flatten = config.columns == .flatten
        let own = flatten ? work.columns.compactMap { target.column($0) } : []
        let rows = StageRows(columns: own, mode: .append, work: work)
        let names =
            (flatten ? ApplyStatements.flatMetadata : ApplyStatements.appendJSON)
            + own.map { SQL.identifier($0.name) }
        var carrying: Set<Int> = []
        let refused = try applyRange(staged.map(\.seq)[...], table: target.qualified, sql) { first, last in
            let range = staged.filter { $0.seq >= first && $0.seq <= last && !carrying.contains($0.seq) }
            try sql.connection.copyIn(ApplyStatements.copy(into: target.qualified, columns: names)) { send in
                var copy = CopyText()
                carrying.formUnion(
                    try rows.append(range[...], batches: batches, flatten: flatten, into: &copy) { try send($0[...]) })
                try send(copy.bytes[...])
            }
        }
        return carrying.map { ($0, missingReason) } + refused
    }

    /// The stage table for the target and these columns (made once per connection).
    func stageTable(_ target: TargetTable, columns: [TargetTable.Column], _ sql: SQLConnection, _ state: Target)
        throws -> String
    {
        let signature =
            target.qualified + "\u{0}" + columns.map { "\($0.name) \($0.stageType)" }.joined(separator: "\u{0}")
        if let name = state.stages[signature] { return name }
        let name = "pg_temp.pgbridge_stage_\(state.stages.count + 1)"
        try sql.execute(ApplyStatements.createStage(name, columns: columns))
        state.stages[signature] = name
        return name
    }

    /// Runs `body` for the seq range of `seqs` in a savepoint; when the target refuses a row (a
    /// constraint, a value, a permission), the range is split in halves until the refused
    /// events are found. The rest is applied.
    func applyRange(
        _ seqs: ArraySlice<Int>, table: String, _ sql: SQLConnection,
        refusing: (PostgresError) -> Bool = PostgresSink.refusesRows, _ body: (Int, Int) throws -> Void
    ) throws -> [(seq: Int, reason: String)] {
        guard let first = seqs.first, let last = seqs.last else { return [] }
        try sql.execute("SAVEPOINT pgbridge_range")
        do {
            try body(first, last)
            try sql.execute("RELEASE SAVEPOINT pgbridge_range")
            return []
        } catch let error as PostgresError where error.code == .queryFailed && refusing(error) {
            try sql.execute("ROLLBACK TO SAVEPOINT pgbridge_range")
            try sql.execute("RELEASE SAVEPOINT pgbridge_range")
            guard seqs.count > 1 else {
                return [(first, "\(table) refused the change: SQLSTATE \(error.sqlState ?? "?"): \(error.message)")]
            }
            let middle = seqs.startIndex + seqs.count / 2
            return try applyRange(seqs[..<middle], table: table, sql, refusing: refusing, body)
                + applyRange(seqs[middle...], table: table, sql, refusing: refusing, body)
        }
    }

    /// Errors that belong to rows, not to the target as a whole: data exceptions (22),
    /// integrity constraints (23), two changes the target sees as one key (21000: keys equal
    /// only to the target, as with citext), a refused privilege (42501), a type mismatch
    /// (42804), a trigger's RAISE (P0001).
    static func refusesRows(_ error: PostgresError) -> Bool {
        guard error.code == .queryFailed, let state = error.sqlState else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("21")
            || ["42501", "42804", "P0001"].contains(state)
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
                let older =
                    Int64(chunk.rangeEnd) != nil ? chunk.rangeEnd : "\(SQL.literal(chunk.rangeEnd))::timestamptz"
                try sql.execute(
                    "SELECT drop_chunks(\(SQL.literal(target.qualified))::regclass, older_than => \(older))")
            }
            logger.info(
                "postgres sink \(sinkName): dropped chunks of \(target.qualified) older than \(newest.rangeEnd) (mirrored retention)",
                metadata: ["pipe": "\(pipe)"])
        }
    }
}
