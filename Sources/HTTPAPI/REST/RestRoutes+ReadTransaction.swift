import Foundation
import PostgresClient

/// A read's transaction: its statements in one pipeline with `BEGIN`, the role and `COMMIT`,
/// and a cursor only for results larger than one fetch.
extension TableRoutes {
    /// How a read's rows are fetched.
    enum ReadMode: Sendable, Equatable {
        /// One object (`application/vnd.pgrst.object+json`): the rows are aggregated and counted.
        case singular
        /// At most one fetch of rows (a `limit` within it), or a call that writes: run as is.
        case bounded
        /// Unknown size: read at most one fetch plus one row; more than a fetch means a cursor.
        case probe
        /// Streamed from a cursor, a fetch at a time.
        case cursor
    }

    /// Everything a read's transaction needs, worked out before it starts.
    struct ReadTransaction: Sendable {
        var settings: SessionSettings
        var relations: [TableInfo]
        /// The statement whose rows are answered, shaped as JSON text or CSV columns.
        var rows: SQLStatement
        var counted: SQLStatement
        var counting: RestPreferences.Count?
        var mode: ReadMode
        var csv: Bool
        var readOnly: Bool
        var rollback: Bool
        /// A call that writes reports its row count as the total (it runs once, uncounted).
        var totalFromRows: Bool
    }

    /// Runs the read; a probe that finds more than one fetch of rows is read again, from a
    /// cursor in a transaction of its own (so that its count and rows share one snapshot).
    static func runRead(_ connection: SQLConnection, _ read: ReadTransaction) throws -> (Chunk, Int?) {
        if let answer = try runRead(connection, read, mode: read.mode) { return answer }
        guard let answer = try runRead(connection, read, mode: .cursor) else {
            throw RestError(status: .internalServerError, code: "PGRST000", message: "a cursor read gave no answer")
        }
        return answer
    }

    /// One attempt; nil when a probe found more rows than one fetch.
    private static func runRead(_ connection: SQLConnection, _ read: ReadTransaction, mode: ReadMode) throws -> (
        Chunk, Int?
    )? {
        let fetchRows = APIServer.fetchRows
        // The transaction ends in the same round trip unless what follows may still change how:
        // a singular answer of a call that writes (rolled back when not one row), a cursor, or
        // an estimated count that may turn into an exact one.
        let endsAtOnce =
            (mode == .singular ? read.readOnly : mode != .cursor) && read.counting != .estimated
        let end: Finish = read.rollback ? .rollback : .commit
        let finish = end.command ?? "COMMIT"
        var statements: [SQLStatement] = []
        switch read.counting {
        case .exact?:
            var counted = read.counted
            counted.cacheable = true
            statements.append(counted)
        case .planned?, .estimated?: statements.append(plannedCountStatement(read.counted))
        case nil: break
        }
        let text = read.rows.text
        let parameters = read.rows.parameters
        // JSON answers have one text column whatever the tables hold; CSV has the tables' own.
        let cacheable = !read.csv
        switch mode {
        case .singular:
            statements.append(
                SQLStatement(
                    text: "SELECT (array_agg(pgrst_one.j))[1], count(*) FROM (\(text)) pgrst_one(j)",
                    parameters: parameters, cacheable: cacheable))
        case .bounded:
            statements.append(SQLStatement(text: text, parameters: parameters, cacheable: cacheable))
        case .probe:
            statements.append(
                SQLStatement(
                    text: "SELECT * FROM (\(text)) pgrst_probe LIMIT \(fetchRows + 1)", parameters: parameters,
                    cacheable: cacheable))
        case .cursor:
            statements.append(
                SQLStatement(text: "DECLARE pgbridge_rows NO SCROLL CURSOR FOR \(text)", parameters: parameters))
            statements.append(SQLStatement(text: "FETCH \(fetchRows) FROM pgbridge_rows", parameters: []))
        }
        let results = try transaction(
            connection, read.settings, relations: read.relations, readOnly: read.readOnly, statements,
            finish: endsAtOnce ? end : .open)
        var total: Int?
        switch read.counting {
        case .exact?:
            total = Int(results[0].string(0, 0) ?? "0") ?? 0
        case .planned?:
            total = plannedCount(results[0])
        case .estimated?:
            let planned = plannedCount(results[0])
            total = planned > 10_000 ? planned : try count(connection, read.counted)
        case nil:
            break
        }
        let result = results[results.count - 1]
        switch mode {
        case .singular:
            let rows = Int(result.string(0, 1) ?? "0") ?? 0
            guard rows == 1 else {
                if !endsAtOnce { try connection.execute("ROLLBACK") }
                throw RestError.singular(rows)
            }
            if !endsAtOnce { try connection.execute(finish) }
            var chunk = Chunk(bytes: Array((result.string(0, 0) ?? "null").utf8), rows: 1)
            chunk.complete = true
            return (chunk, total)
        case .probe where result.rowCount > fetchRows:
            if !endsAtOnce { try connection.execute("ROLLBACK") }
            return nil
        case .bounded, .probe:
            var chunk = fetch(result, csv: read.csv, header: true, first: true)
            if !endsAtOnce { try connection.execute(finish) }
            chunk.complete = true
            if read.totalFromRows { total = chunk.rows }
            return (chunk, total)
        case .cursor:
            var chunk = fetch(result, csv: read.csv, header: true, first: true)
            if chunk.rows < fetchRows {
                try connection.execute(finish)
                chunk.complete = true
            } else if total == nil {
                total = try count(connection, read.counted)
            }
            return (chunk, total)
        }
    }

    /// The planner's row estimate of the count's query (`Prefer: count=planned`).
    static func plannedCountStatement(_ statement: SQLStatement) -> SQLStatement {
        let inner = statement.text.replacingOccurrences(of: "SELECT count(*) FROM", with: "SELECT 1 FROM")
        return SQLStatement(text: "EXPLAIN (FORMAT JSON) \(inner)", parameters: statement.parameters)
    }

    /// The row estimate in `EXPLAIN (FORMAT JSON)`'s answer.
    static func plannedCount(_ result: SQLResult) -> Int {
        guard let plan = result.string(0, 0), let data = plan.data(using: .utf8),
            let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]],
            let top = list.first?["Plan"] as? [String: Any], let rows = top["Plan Rows"] as? Int
        else { return 0 }
        return rows
    }

    static func count(_ connection: SQLConnection, _ statement: SQLStatement) throws -> Int {
        Int(try connection.execute(statement.text, statement.parameters).string(0, 0) ?? "0") ?? 0
    }
}
