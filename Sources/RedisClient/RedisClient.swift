import BridgeCore
import Dispatch
import Foundation
import Synchronization

/// A Redis connection shared by every sink with the same connection settings; commands run on
/// its own serial queue, never on Swift's cooperative pool.
public final class RedisClient: @unchecked Sendable {
    // @unchecked Sendable: `connection` and `arena` are only touched on `queue`.
    private let connection: RedisConnection
    private let queue: DispatchQueue
    private var arena = CommandArena()
    private let users = Mutex(0)

    public init(config: RedisSinkConfig) throws {
        guard let url = ServiceURL(config.url) else {
            throw SinkError(sink: "redis", message: "malformed URL", retriable: false)
        }
        connection = RedisConnection(url: url, timeout: config.timeout)
        queue = DispatchQueue(label: "pgbridge.redis")
    }

    public var description: String { connection.description }

    /// Connects on first use; later calls only count the user.
    public func open() async throws {
        try await run { connection, _ in try connection.connect() }
        users.withLock { $0 += 1 }
    }

    public func close() async {
        let remaining = users.withLock {
            $0 -= 1
            return $0
        }
        guard remaining <= 0 else { return }
        try? await run { connection, _ in connection.disconnect() }
    }

    /// Runs `body` on the client's queue with a connected connection and the shared argument arena.
    public func run<T: Sendable>(_ body: @escaping @Sendable (RedisConnection, inout CommandArena) throws -> T)
        async throws
        -> T
    {
        try await queue.perform { [self] in
            try connection.connect()
            return try body(connection, &arena)
        }
    }
}
