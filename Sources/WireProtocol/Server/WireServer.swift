import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The PostgreSQL wire-protocol server: each connection is a `WireSession` on a task of its
/// own; C clients of the tables run on their own queues, never on the event loop.
public final class WireServer: Service, Sendable {
    let host: String
    let port: Int
    let context: WireServerContext
    let logger: Logger
    private let state = Mutex<State>(State())

    struct State {
        var boundPort: Int?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
    }

    public init(host: String, port: Int, context: WireServerContext, logger: Logger) {
        self.host = host
        self.port = port
        self.context = context
        self.logger = logger
    }

    /// The port listened on (when configured as 0), once bound.
    public var boundPort: Int? { state.withLock { $0.boundPort } }

    static let loginTimeout = TimeAmount.seconds(60)

    /// Where sessions run (see `DispatchTaskExecutor`).
    private static let executor = DispatchTaskExecutor(label: "pgbridge.wire")

    public func run() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await serve() }
    }

    private func serve() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrontendDecoder()))
                    return try NIOAsyncChannel<FrontendMessage, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let bound = server.channel.localAddress?.port ?? port
        state.withLock { $0.boundPort = bound }
        logger.info("wire protocol (postgres_fdw) listening on \(host):\(bound)")
        let stop: @Sendable () -> Void = {
            let open = self.state.withLock { state in
                state.shuttingDown = true
                return Array(state.connections.values)
            }
            server.channel.close(promise: nil)
            for channel in open { channel.close(promise: nil) }
        }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                }
            } onGracefulShutdown: {
                stop()
            }
        } onCancel: {
            stop()
        }
    }

    private func serve(_ connection: NIOAsyncChannel<FrontendMessage, ByteBuffer>) async {
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        let admitted = state.withLock { state -> Bool in
            guard !state.shuttingDown else { return false }
            state.connections[id] = channel
            return true
        }
        guard admitted else {
            try? await channel.close()
            return
        }
        defer { _ = state.withLock { $0.connections.removeValue(forKey: id) } }
        let session = WireSession(context: context, logger: logger)
        // A client that has not logged in within a minute is dropped.
        let loggedIn = Atomic(false)
        let loginTimeout = channel.eventLoop.scheduleTask(in: Self.loginTimeout) {
            if !loggedIn.load(ordering: .relaxed) { channel.close(promise: nil) }
        }
        defer { loginTimeout.cancel() }
        do {
            try await connection.executeThenClose { inbound, outbound in
                session.flush = { try await outbound.write($0) }
                var output = channel.allocator.buffer(capacity: 4096)
                do {
                    for try await message in inbound {
                        switch message {
                        case .sslRequest, .gssEncryptionRequest:
                            output.writeInteger(UInt8(ascii: "N"))
                            try await outbound.write(output)
                            output.clear()
                            continue
                        case .cancel(let processID, let secret):
                            if context.registry.cancel(processID: processID, secret: secret) {
                                logger.debug("wire: cancel request for session \(processID)")
                            }
                            return
                        default:
                            break
                        }
                        let action = await session.handle(message, output: &output)
                        if session.isLoggedIn { loggedIn.store(true, ordering: .relaxed) }
                        if action == .close || message.endsExchange || output.readableBytes >= 64 << 10 {
                            if output.readableBytes > 0 { try await outbound.write(output) }
                            output.clear()
                        }
                        if action == .close { return }
                    }
                } catch let violation as ProtocolViolation {
                    logger.info("wire: closing a connection after a protocol violation: \(violation)")
                    output.writeError(WireError("08P01", violation.message))
                    try? await outbound.write(output)
                }
            }
        } catch {
            logger.debug("wire: connection ended: \(error)")
        }
        await session.end()
    }
}

extension FrontendMessage {
    /// Messages after which the client waits for an answer: the output is written then.
    var endsExchange: Bool {
        switch self {
        case .parse, .bind, .describe, .execute, .close: false
        default: true
        }
    }
}
