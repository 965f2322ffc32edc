import BridgeCore
import Dispatch

/// An AMQP connection shared by every sink with the same connection settings. Work runs on its
/// serial queue (never on Swift's cooperative pool); between deliveries a timer lets
/// rabbitmq-c answer heartbeats.
public final class RabbitMQClient: Sendable {
    /// The connection and its heartbeat timer, confined to one queue.
    final class State {
        let connection: AMQPConnection
        var timer: (any DispatchSourceTimer)?
        init(_ connection: AMQPConnection) { self.connection = connection }
    }

    private let confined: Confined<State>
    public let description: String

    public init(config: RabbitMQSinkConfig) throws {
        let url = try ServiceURL.required(config.url, for: "rabbitmq")
        let connection = AMQPConnection(url: url, config: config)
        description = connection.description
        confined = Confined(State(connection), label: "pgbridge.rabbitmq")
    }

    public func open() async throws {
        try await confined.retain { [confined] state in
            try state.connection.ready()
            Self.startHeartbeatTimer(state, on: confined.queue)
        }
    }

    public func close() async {
        await confined.release { state in
            state.timer?.cancel()
            state.timer = nil
            state.connection.disconnect()
        }
    }

    /// Runs `body` on the client's queue with a ready connection (connected, channel open);
    /// heartbeats are answered from then on, also for users that connect on first use.
    public func run<T: Sendable>(_ body: @escaping @Sendable (AMQPConnection) throws -> T) async throws -> T {
        try await confined.run { [confined] state in
            try state.connection.ready()
            Self.startHeartbeatTimer(state, on: confined.queue)
            return try body(state.connection)
        }
    }

    private static func startHeartbeatTimer(_ state: State, on queue: DispatchQueue) {
        guard state.timer == nil else { return }
        let seconds = max(1, state.connection.config.heartbeat.components.seconds / 2)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .seconds(Int(seconds)), repeating: .seconds(Int(seconds)))
        let connection = state.connection
        timer.setEventHandler { connection.serviceHeartbeats() }
        timer.resume()
        state.timer = timer
    }
}
