import BridgeCore
import Dispatch
import Synchronization

/// An AMQP connection shared by every sink with the same connection settings. Work runs on its
/// serial queue (never on Swift's cooperative pool); between deliveries a timer lets
/// rabbitmq-c answer heartbeats.
public final class RabbitMQClient: @unchecked Sendable {
    // @unchecked Sendable: `connection` and `timer` are only touched on `queue`.
    private let connection: AMQPConnection
    private let queue = DispatchQueue(label: "pgbridge.rabbitmq")
    private var timer: (any DispatchSourceTimer)?
    private let users = Mutex(0)

    public init(config: RabbitMQSinkConfig) throws {
        guard let url = ServiceURL(config.url) else {
            throw SinkError(sink: "rabbitmq", message: "malformed URL", retriable: false)
        }
        connection = AMQPConnection(url: url, config: config)
    }

    public var description: String { connection.description }

    public func open() async throws {
        try await run { connection in
            try connection.ready()
            self.startHeartbeatTimer()
        }
        users.withLock { $0 += 1 }
    }

    public func close() async {
        let remaining = users.withLock {
            $0 -= 1
            return $0
        }
        guard remaining <= 0 else { return }
        try? await run { connection in
            self.timer?.cancel()
            self.timer = nil
            connection.disconnect()
        }
    }

    /// Runs `body` on the client's queue with a ready connection (connected, channel open);
    /// heartbeats are answered from then on, also for users that connect on first use.
    public func run<T: Sendable>(_ body: @escaping @Sendable (AMQPConnection) throws -> T) async throws -> T {
        try await queue.perform { [self] in
            try connection.ready()
            startHeartbeatTimer()
            return try body(connection)
        }
    }

    private func startHeartbeatTimer() {
        guard timer == nil else { return }
        let seconds = max(1, connection.config.heartbeat.components.seconds / 2)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .seconds(Int(seconds)), repeating: .seconds(Int(seconds)))
        timer.setEventHandler { [connection] in connection.serviceHeartbeats() }
        timer.resume()
        self.timer = timer
    }
}
