import BridgeCore
import Foundation

/// A Redis connection shared by every sink with the same connection settings; commands run on
/// its own serial queue, never on Swift's cooperative pool.
public final class RedisClient: Sendable {
    /// The connection and its reused argument buffers, confined to one queue.
    final class State {
        let connection: RedisConnection
        var arena = CommandArena()
        init(_ connection: RedisConnection) { self.connection = connection }
    }

    private let confined: Confined<State>
    public let description: String

    public init(config: RedisSinkConfig) throws {
        let url = try ServiceURL.required(config.url, for: "redis")
        let connection = RedisConnection(url: url, timeout: config.timeout)
        description = connection.description
        confined = Confined(State(connection), label: "pgbridge.redis")
    }

    /// Connects on first use; later calls only count the user.
    public func open() async throws {
        try await confined.retain { try $0.connection.connect() }
    }

    public func close() async {
        await confined.release { $0.connection.disconnect() }
    }

    /// Runs `body` on the client's queue with a connected connection and the shared argument arena.
    public func run<T: Sendable>(_ body: @escaping @Sendable (RedisConnection, inout CommandArena) throws -> T)
        async throws -> T
    {
        try await confined.run { state in
            try state.connection.connect()
            return try body(state.connection, &state.arena)
        }
    }
}
