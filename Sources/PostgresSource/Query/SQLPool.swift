import BridgeCore
import Synchronization

/// At most `size` SQL sessions, handed out one request at a time; requests beyond that wait
/// in order.
public final class SQLPool: Sendable {
    private struct State {
        var idle: [SQLSession] = []
        var created = 0
        var waiters: [CheckedContinuation<SQLSession, Never>] = []
    }

    private let postgres: PostgresConfig
    private let size: Int
    private let state = Mutex(State())

    public init(postgres: PostgresConfig, size: Int) {
        precondition(size > 0)
        self.postgres = postgres
        self.size = size
    }

    /// Runs `body` with a session of its own; the session returns to the pool afterwards.
    /// When `body` throws, the session's connection is replaced (it may be mid-transaction).
    public func withSession<T: Sendable>(_ body: (SQLSession) async throws -> T) async throws -> T {
        let session = await acquire()
        do {
            let result = try await body(session)
            release(session)
            return result
        } catch {
            session.reset()
            release(session)
            throw error
        }
    }

    /// A session the caller must give back with `release` (streamed responses).
    public func acquire() async -> SQLSession {
        enum Next { case ready(SQLSession), create(Int), wait }
        return await withCheckedContinuation { continuation in
            let next = state.withLock { state -> Next in
                if let session = state.idle.popLast() { return .ready(session) }
                if state.created < size {
                    state.created += 1
                    return .create(state.created)
                }
                state.waiters.append(continuation)
                return .wait
            }
            switch next {
            case .ready(let session): continuation.resume(returning: session)
            case .create(let number):
                continuation.resume(returning: SQLSession(postgres: postgres, label: "pgbridge-api-sql-\(number)"))
            case .wait: break
            }
        }
    }

    public func release(_ session: SQLSession) {
        let waiter = state.withLock { state -> CheckedContinuation<SQLSession, Never>? in
            if state.waiters.isEmpty {
                state.idle.append(session)
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume(returning: session)
    }
}
