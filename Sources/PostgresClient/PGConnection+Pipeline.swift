import CLibPQ
import Glibc

/// libpq's pipeline mode: several statements sent at once, ended by one Sync, their results
/// read afterwards; one network round trip instead of one per statement.
extension PGConnection {
    /// One statement of a pipeline (extended protocol: one SQL command, text parameters).
    public struct PipelinedStatement: Sendable {
        public var sql: String
        public var parameters: [String?]
        /// Prepared once per connection under this name and then only executed: for statements
        /// whose text never changes, so that the server parses and plans them once.
        public var preparedName: String?
        /// Prepared under a generated name the first time this text is sent on the connection,
        /// and kept among the connection's most recently used statements (64). Only for
        /// statements whose result columns cannot change with the tables they read (the server
        /// refuses a cached plan whose result type changed).
        public var cached: Bool

        public init(_ sql: String, _ parameters: [String?] = [], preparedName: String? = nil, cached: Bool = false) {
            self.sql = sql
            self.parameters = parameters
            self.preparedName = preparedName
            self.cached = cached
        }
    }

    /// A statement of a pipeline failed. The statements before it ran; the ones after it did
    /// not (the server skips everything up to the Sync). In an explicit transaction the
    /// transaction is left aborted: roll it back or drop the connection.
    public struct PipelineFailure: Error, Sendable, CustomStringConvertible {
        /// The failed statement's position in the pipeline.
        public var index: Int
        public var error: PostgresError
        /// The failed statement ran a cached plan prepared by an earlier pipeline, whose
        /// parameter types were fixed then: a change of its tables since (a column's type) may be
        /// why it failed, and it is prepared afresh on its next use.
        public var ranEarlierPreparedPlan: Bool { earlierPlan != nil }
        /// The earlier plan's name and text (still prepared on the server until the next pipeline).
        var earlierPlan: (name: String, sql: String)?
        public var description: String { error.description }
    }

    /// Sends `statements` in one pipeline and returns each one's result, in order. A failed
    /// statement throws `PipelineFailure`; a lost connection throws `PostgresError`.
    public func pipeline(_ statements: [PipelinedStatement]) throws -> [PGResult] {
        // Cached statements that failed last time are prepared afresh; the old ones go first.
        for name in staleStatements { _ = try? execute("DEALLOCATE \(name)") }
        staleStatements.removeAll()
        guard PQenterPipelineMode(handle) == 1 else {
            throw PostgresError(.queryFailed, "cannot enter pipeline mode on \(target): \(errorMessage)")
        }
        defer {
            // Fails only with results left unread: the connection cannot be used as it is.
            if PQexitPipelineMode(handle) != 1 { abandoned = true }
        }
        // What was sent, in order: a prepare or a deallocation (their results are read and
        // checked, not returned) or a statement.
        enum Sent {
            case prepare(name: String, sql: String?, index: Int)
            case deallocate(name: String, index: Int)
            /// `earlierPlan`: the cached plan it ran, when an earlier pipeline prepared it.
            case statement(Int, earlierPlan: String?)
        }
        var sent: [Sent] = []
        sent.reserveCapacity(statements.count + 2)
        // Cached statements prepared earlier in this pipeline (the cache learns of them only
        // once their prepare succeeded): a text sent twice is prepared once.
        var preparedHere: [String: String] = [:]
        for (index, statement) in statements.enumerated() {
            var name = statement.preparedName
            var earlierPlan: String?
            if let constant = name, !preparedStatements.contains(constant) {
                guard PQsendPrepare(handle, constant, statement.sql, 0, nil) == 1 else { throw sendFailure() }
                sent.append(.prepare(name: constant, sql: nil, index: index))
            } else if name == nil, statement.cached {
                // The common case first: a text an earlier request prepared (one lookup).
                earlierPlan = statementCache.name(for: statement.sql)
                name = earlierPlan ?? (preparedHere.isEmpty ? nil : preparedHere[statement.sql])
                if name == nil {
                    let (fresh, evicted) = statementCache.reserve(statement.sql)
                    if let evicted {
                        guard PQsendQueryParams(handle, "DEALLOCATE \(evicted)", 0, nil, nil, nil, nil, 0) == 1 else {
                            throw sendFailure()
                        }
                        sent.append(.deallocate(name: evicted, index: index))
                    }
                    guard PQsendPrepare(handle, fresh, statement.sql, 0, nil) == 1 else { throw sendFailure() }
                    sent.append(.prepare(name: fresh, sql: statement.sql, index: index))
                    preparedHere[statement.sql] = fresh
                    name = fresh
                }
            }
            let prepared = name
            let accepted = withParameters(statement.parameters) { count, values in
                if let prepared {
                    return PQsendQueryPrepared(handle, prepared, count, values, nil, nil, 0)
                }
                return PQsendQueryParams(handle, statement.sql, count, nil, values, nil, nil, 0)
            }
            guard accepted == 1 else { throw sendFailure() }
            sent.append(.statement(index, earlierPlan: earlierPlan))
        }
        guard PQpipelineSync(handle) == 1 else { throw sendFailure() }

        var results: [PGResult] = []
        results.reserveCapacity(statements.count)
        var failure: PipelineFailure?
        for entry in sent {
            guard let raw = PQgetResult(handle) else { throw lost() }
            let result = PGResult(raw)
            // Each command's results end with a NULL.
            while let extra = PQgetResult(handle) { PQclear(extra) }
            if result.status == PGRES_PIPELINE_ABORTED {
                // A skipped eviction is done before the next pipeline instead.
                if case .deallocate(let name, _) = entry { staleStatements.append(name) }
                continue
            }
            switch entry {
            case .prepare(let name, let sql, let index):
                do {
                    _ = try check(result)
                    if let sql { statementCache.insert(sql, name: name) } else { preparedStatements.insert(name) }
                } catch let error as PostgresError {
                    failure = failure ?? PipelineFailure(index: index, error: error)
                }
            case .deallocate(_, let index):
                do {
                    _ = try check(result)
                } catch let error as PostgresError {
                    failure = failure ?? PipelineFailure(index: index, error: error)
                }
            case .statement(let index, let earlierPlan):
                do {
                    results.append(try check(result))
                } catch let error as PostgresError {
                    failure =
                        failure
                        ?? PipelineFailure(
                            index: index, error: error,
                            earlierPlan: earlierPlan.map { ($0, statements[index].sql) })
                    // A cached plan that no longer fits its tables (a column's type changed)
                    // would fail every time: it is prepared again on its next use.
                    if statements[index].cached, let name = statementCache.remove(statements[index].sql) {
                        staleStatements.append(name)
                    }
                }
            }
        }
        // The Sync's own result closes the pipeline.
        guard let sync = PQgetResult(handle) else { throw lost() }
        let status = PGResult(sync).status
        if status != PGRES_PIPELINE_SYNC {
            if isBroken { throw lost() }
            abandoned = true
            throw PostgresError(.protocolViolation, "unexpected result at the end of a pipeline on \(target)")
        }
        if let failure {
            if failure.error.code == .connectionFailed { throw failure.error }
            // A prepared statement vanished (DEALLOCATE ALL in a function, or a pooler between
            // pgbridge and the server): the connection is replaced rather than kept failing.
            if failure.error.sqlState == "26000" { abandoned = true }
            throw failure
        }
        return results
    }

    /// After a failure of a statement that ran a plan prepared by an earlier pipeline (outside
    /// any transaction: roll back first): whether preparing its text now gives other parameter
    /// or result types (or the earlier plan no longer fits at all), that is, its tables changed
    /// since and running it again may succeed.
    /// The fresh plan is kept in the cache for the next use. One round trip per step; false
    /// when the text no longer prepares at all.
    public func freshPlanDiffers(from failure: PipelineFailure) throws -> Bool {
        guard let earlier = failure.earlierPlan else { return false }
        // Describing revalidates the plan: one that no longer fits its tables fails here.
        let old: [UInt32]?
        do {
            old = try describePrepared(earlier.name)
        } catch let error as PostgresError where error.code != .connectionFailed {
            old = nil
        }
        let (fresh, evicted) = statementCache.reserve(earlier.sql)
        if let evicted { staleStatements.append(evicted) }
        guard let prepared = PQprepare(handle, fresh, earlier.sql, 0, nil) else { throw lost() }
        do {
            _ = try check(PGResult(prepared))
        } catch let error as PostgresError where error.code != .connectionFailed {
            return false
        }
        statementCache.insert(earlier.sql, name: fresh)
        guard let old else { return true }
        return try describePrepared(fresh) != old
    }

    /// Forgets cached statements by their text; they are deallocated before the next pipeline
    /// and prepared afresh on their next use.
    public func forgetCachedStatements(_ texts: [String]) {
        for text in texts {
            if let name = statementCache.remove(text) { staleStatements.append(name) }
        }
    }

    /// A prepared statement's parameter types, a separator and its result column types.
    private func describePrepared(_ name: String) throws -> [UInt32] {
        guard let raw = PQdescribePrepared(handle, name) else { throw lost() }
        let result = try check(PGResult(raw))
        let parameters = (0..<PQnparams(result.handle)).map { PQparamtype(result.handle, $0) }
        let columns = (0..<PQnfields(result.handle)).map { PQftype(result.handle, $0) }
        return parameters + [0] + columns
    }

    /// Calls `body` with the parameters as C strings (NULL for SQL NULL), freed afterwards.
    private func withParameters<T>(
        _ parameters: [String?], _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> T
    ) -> T {
        if parameters.isEmpty { return body(0, nil) }
        let values = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { values.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = values.map { $0.map { UnsafePointer($0) } }
        return pointers.withUnsafeBufferPointer { body(Int32(parameters.count), $0.baseAddress) }
    }

    /// A pipeline that could not be sent whole leaves commands queued in libpq: the connection
    /// is given up.
    private func sendFailure() -> PostgresError {
        abandoned = true
        return PostgresError(.connectionFailed, "cannot send to PostgreSQL at \(target): \(errorMessage)")
    }

    private func lost() -> PostgresError {
        abandoned = true
        return PostgresError(.connectionFailed, "lost the connection to PostgreSQL at \(target): \(errorMessage)")
    }
}
