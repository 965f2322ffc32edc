import BridgeCore
import Foundation
import Synchronization

@testable import PostgresClient
@testable import PostgresSource

/// Writes small transactions from its own thread while a test disturbs pgbridge or PostgreSQL.
/// Each committed transaction is recorded with the WAL insert position read right after its
/// commit (an upper bound of the commit's end LSN).
final class Inserter: Sendable {
    struct Commit: Sendable {
        let lastID: Int
        let walAfterCommit: LSN
    }

    private let url: String
    private let state = Mutex<(commits: [Commit], done: Bool, failures: Int)>(([], false, 0))
    private let stopFlag = Atomic<Bool>(false)

    init(url: String) { self.url = url }

    var commits: [Commit] { state.withLock { $0.commits } }
    var isDone: Bool { state.withLock { $0.done } }
    var failures: Int { state.withLock { $0.failures } }
    func stop() { stopFlag.store(true, ordering: .relaxed) }

    /// Runs `transactions` times the SQL produced by `statement(transactionIndex, firstID)`;
    /// ids advance by `rowsPerTransaction`. Reconnects and retries after connection errors
    /// (a retried transaction whose first id already exists was committed before the error).
    func start(
        transactions: Int, rowsPerTransaction: Int, pause: Duration, table: String,
        statement: @escaping @Sendable (Int, Int) -> String
    ) {
        let thread = Thread { [self] in
            var connection: PGConnection?
            var index = 0
            while index < transactions && !stopFlag.load(ordering: .relaxed) {
                let firstID = index * rowsPerTransaction + 1
                do {
                    if connection == nil || connection!.isBroken {
                        connection = try PGConnection(url: url, mode: .normal, connectTimeout: 2)
                    }
                    do {
                        try connection!.execute("BEGIN; \(statement(index, firstID)); COMMIT;")
                    } catch let error as PostgresError where error.sqlState == "23505" {
                        _ = try? connection!.execute("ROLLBACK")  // committed before a lost connection
                    }
                    let lsn = try connection!.execute("SELECT pg_current_wal_insert_lsn()::text").string(0, 0).flatMap {
                        LSN($0)
                    }
                    state.withLock {
                        $0.commits.append(
                            Commit(lastID: firstID + rowsPerTransaction - 1, walAfterCommit: lsn ?? .zero))
                    }
                    index += 1
                    if pause > .zero { Thread.sleep(forTimeInterval: pause.seconds) }
                } catch {
                    connection = nil
                    state.withLock { $0.failures += 1 }
                    Thread.sleep(forTimeInterval: 0.1)
                }
            }
            state.withLock { $0.done = true }
        }
        thread.start()
    }

    func waitUntilDone(timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !isDone {
            if ContinuousClock.now > deadline { throw TestFailure("inserter did not finish within \(timeout)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
