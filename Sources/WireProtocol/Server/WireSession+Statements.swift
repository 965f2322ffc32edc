import Foundation
import NIOCore

extension WireSession {
    /// What a statement produced.
    enum StatementResult {
        /// Rows to send; the command tag is `tag` followed by the row count (`SELECT 3`), or
        /// `tag` alone when `countsRows` is false (`SHOW`, `EXPLAIN`).
        case rows(columns: [ResultColumn], source: RowSource, tag: String)
        case command(String)
    }

    // MARK: - Simple query

    func simpleQuery(_ sql: String, output: inout ByteBuffer) async {
        defer { output.writeReadyForQuery(status.rawValue) }
        do {
            if let catalogResult = try await CatalogQueries.answer(sql, catalog: catalog) {
                try checkNotFailed()
                output.writeRowDescription(catalogResult.columns)
                output.writeRows(catalogResult.rows)
                output.writeCommandComplete("SELECT \(catalogResult.rows.count)")
                return
            }
            let statements = try SQLParser.parse(sql)
            if statements.isEmpty {
                output.writeEmpty("I")
                return
            }
            for statement in statements {
                let result = try await run(statement, parameters: [], output: &output)
                switch result {
                case .command(let tag):
                    output.writeCommandComplete(tag)
                case .rows(let columns, let source, let tag):
                    output.writeRowDescription(columns)
                    do {
                        while true {
                            let rows = try await source.fetch(1_000)
                            try checkCancelled()
                            output.writeRows(rows)
                            try await flushIfLarge(&output)
                            if rows.count < 1_000 { break }
                        }
                    } catch {
                        await source.close()
                        throw error
                    }
                    await source.close()
                    output.writeCommandComplete(Self.tag(tag, count: source.sent))
                }
            }
        } catch {
            fail(Self.wireError(error), output: &output)
        }
    }

    static func tag(_ tag: String, count: Int) -> String {
        switch tag {
        case "SELECT", "FETCH": return "\(tag) \(count)"
        case "INSERT": return "INSERT 0 \(count)"
        default: return tag
        }
    }

    func checkNotFailed() throws(WireError) {
        if status == .failed {
            throw WireError(
                "25P02", "current transaction is aborted, commands ignored until end of transaction block")
        }
    }

    func checkCancelled() throws(WireError) {
        if key.isCancelled { throw WireError("57014", "canceling statement due to user request") }
    }

    // MARK: - Statements

    /// Runs one statement; notices (warnings) go straight to `output`.
    func run(_ statement: SQLStatement, parameters: [SQLValue], output: inout ByteBuffer) async throws
        -> StatementResult
    {
        switch statement {
        case .rollback, .rollbackToSavepoint, .commit:
            break
        default:
            try checkNotFailed()
        }
        switch statement {
        case .empty:
            return .command("")
        case .select(let select):
            let execution = try await SelectExecution.start(
                select, catalog: catalog, parameters: parameters, maxBytes: context.maxScanBytes)
            execution.isCancelled = { [key] in key.isCancelled }
            return .rows(columns: execution.resultColumns, source: RowSource(execution), tag: "SELECT")
        case .explain(let select):
            return try await explain(select, parameters: parameters)
        case .insert(let insert):
            return try await self.insert(insert, parameters: parameters)
        case .set:
            return .command("SET")
        case .reset:
            return .command("RESET")
        case .show(let name):
            let parameter = name == "all" ? nil : WireSessionDefaults.parameters.first { $0.key.lowercased() == name }
            guard let parameter else {
                throw WireError("42704", "unrecognized configuration parameter \"\(name)\"")
            }
            return .rows(
                columns: [ResultColumn(name, .text)], source: RowSource(rows: [[.text(parameter.value)]]), tag: "SHOW")
        case .begin(let tag):
            if status != .idle {
                output.writeError(
                    WireError("25001", "there is already a transaction in progress", severity: "WARNING"), notice: true)
            }
            status = .inBlock
            return .command(tag)
        case .commit, .rollback:
            let wasFailed = status == .failed
            if status == .idle {
                output.writeError(
                    WireError("25P01", "there is no transaction in progress", severity: "WARNING"), notice: true)
            }
            await endTransaction()
            if case .commit = statement, !wasFailed { return .command("COMMIT") }
            return .command("ROLLBACK")
        case .savepoint(let name):
            try requireBlock("SAVEPOINT")
            savepoints.append(name)
            return .command("SAVEPOINT")
        case .releaseSavepoint(let name):
            try requireBlock("RELEASE SAVEPOINT")
            guard let index = savepoints.lastIndex(of: name) else {
                throw WireError("3B001", "savepoint \"\(name)\" does not exist")
            }
            savepoints.removeSubrange(index...)
            // Cursors of the released savepoints now belong to the enclosing one.
            for name in Array(cursors.keys) where cursors[name]!.depth > savepoints.count {
                cursors[name]!.depth = savepoints.count
            }
            return .command("RELEASE")
        case .rollbackToSavepoint(let name):
            try requireBlock("ROLLBACK TO SAVEPOINT")
            guard let index = savepoints.lastIndex(of: name) else {
                throw WireError("3B001", "savepoint \"\(name)\" does not exist")
            }
            savepoints.removeSubrange((index + 1)...)
            status = .inBlock
            for (cursorName, cursor) in cursors where cursor.depth > index {
                cursors[cursorName] = nil
                await cursor.execution.close()
            }
            return .command("ROLLBACK")
        case .declareCursor(let name, let select):
            try requireBlock("DECLARE CURSOR")
            guard cursors[name] == nil else { throw WireError("42P03", "cursor \"\(name)\" already exists") }
            let execution = try await SelectExecution.start(
                select, catalog: catalog, parameters: parameters, maxBytes: context.maxScanBytes)
            execution.isCancelled = { [key] in key.isCancelled }
            cursors[name] = Cursor(execution: execution, depth: savepoints.count)
            return .command("DECLARE CURSOR")
        case .fetch(let name, let count):
            guard let cursor = cursors[name] else { throw WireError("34000", "cursor \"\(name)\" does not exist") }
            let rows = try await cursor.execution.fetch(count)
            return .rows(columns: cursor.execution.resultColumns, source: RowSource(rows: rows), tag: "FETCH")
        case .closeCursor(let name):
            guard let name else {
                await closeAllCursors()
                return .command("CLOSE CURSOR ALL")
            }
            guard let cursor = cursors.removeValue(forKey: name) else {
                throw WireError("34000", "cursor \"\(name)\" does not exist")
            }
            await cursor.execution.close()
            return .command("CLOSE CURSOR")
        case .deallocate(let name):
            guard let name else {
                statements = statements.filter { $0.key.isEmpty }
                return .command("DEALLOCATE ALL")
            }
            guard statements.removeValue(forKey: name) != nil else {
                throw WireError("26000", "prepared statement \"\(name)\" does not exist")
            }
            return .command("DEALLOCATE")
        case .discardAll:
            guard status == .idle else {
                throw WireError("25001", "DISCARD ALL cannot run inside a transaction block")
            }
            statements.removeAll()
            await dropAllPortals()
            await closeAllCursors()
            return .command("DISCARD ALL")
        }
    }

    private func requireBlock(_ what: String) throws(WireError) {
        guard status != .idle else { throw WireError("25P01", "\(what) can only be used in transaction blocks") }
    }

    /// COMMIT, ROLLBACK: cursors and portals end with the transaction.
    func endTransaction() async {
        status = .idle
        savepoints.removeAll()
        await dropAllPortals()
        await closeAllCursors()
    }

    private func explain(_ select: SelectStatement, parameters: [SQLValue]) async throws -> StatementResult {
        let execution = try await SelectExecution.start(
            select, catalog: catalog, parameters: parameters, scan: false)
        var rows = 1
        var name = "Result"
        if let from = select.from, let table = await catalog.table(from) {
            rows = max(1, await table.estimatedRows())
            name = "Foreign Scan on \(from)"
        }
        let width = max(8, execution.resultColumns.count * 32)
        let total = 25.0 + Double(rows) * 0.01
        let plan = "\(name)  (cost=25.00..\(String(format: "%.2f", total)) rows=\(rows) width=\(width))"
        return .rows(
            columns: [ResultColumn("QUERY PLAN", .text)], source: RowSource(rows: [[.text(plan)]]), tag: "EXPLAIN")
    }
}
