import BridgeCore
import Synchronization

/// At most `size` SQL sessions, handed out one request at a time; requests beyond that wait
/// in order, for a bounded time.
public final class SQLPool: Sendable {
    private struct State {
        var idle: [SQLSession] = []
        var created = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<SQLSession?, Never>)] = []
        var nextWaiter: UInt64 = 0
    }

    private let postgres: PostgresConfig
    private let size: Int
    private let state = Mutex(State())

    public init(postgres: PostgresConfig, size: Int) {
        precondition(size > 0)
        self.postgres = postgres
        self.size = size
    }

    /// A session of its own for internal use (catalog lookups), outside the pool's count, so
    /// that busy requests never hold it up.
    public func dedicatedSession(label: String) -> SQLSession {
        SQLSession(postgres: postgres, label: label)
    }

    /// Runs `body` with a session of its own; the session returns to the pool afterwards (its
    /// connection replaced when `body` throws: it may be mid-transaction). nil when no session
    /// was free within `timeout`.
    public func withSession<T: Sendable>(timeout: Duration, _ body: (SQLSession) async throws -> T) async throws
        -> T?
    {
        guard let lease = await lease(timeout: timeout) else { return nil }
        do {
            let result = try await body(lease.session)
            lease.release(committed: true)
            return result
        } catch {
            lease.release(committed: false)
            throw error
        }
    }

    /// A session on loan (streamed responses); nil when none was free within `timeout`.
    public func lease(timeout: Duration) async -> SQLLease? {
        enum Next { case ready(SQLSession), create(Int), wait }
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        let session = await withCheckedContinuation { (continuation: CheckedContinuation<SQLSession?, Never>) in
            let next = state.withLock { state -> Next in
                if let session = state.idle.popLast() { return .ready(session) }
                if state.created < size {
                    state.created += 1
                    return .create(state.created)
                }
                state.waiters.append((id, continuation))
                return .wait
            }
            switch next {
            case .ready(let session): continuation.resume(returning: session)
            case .create(let number):
                continuation.resume(returning: SQLSession(postgres: postgres, label: "pgbridge-api-sql-\(number)"))
            case .wait:
                Task { [self] in
                    try? await Task.sleep(for: timeout)
                    let expired = state.withLock { state -> CheckedContinuation<SQLSession?, Never>? in
                        guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                        return state.waiters.remove(at: index).continuation
                    }
                    expired?.resume(returning: nil)
                }
            }
        }
        return session.map { SQLLease(session: $0, pool: self) }
    }

    public func release(_ session: SQLSession) {
        let waiter = state.withLock { state -> CheckedContinuation<SQLSession?, Never>? in
            if state.waiters.isEmpty {
                state.idle.append(session)
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        waiter?.resume(returning: session)
    }
}

/// A session on loan from a pool. Released once: by `release(committed:)`, or when the lease
/// is dropped (a response body that never ran), in which case the connection is reset so that
/// no open transaction or cursor survives.
public final class SQLLease: Sendable {
    public let session: SQLSession
    private let pool: SQLPool
    private let released = Mutex(false)

    public init(session: SQLSession, pool: SQLPool) {
        self.session = session
        self.pool = pool
    }

    public func release(committed: Bool) {
        let first = released.withLock { released in
            defer { released = true }
            return !released
        }
        guard first else { return }
        if !committed { session.reset() }
        pool.release(session)
    }

    deinit { release(committed: false) }
}
