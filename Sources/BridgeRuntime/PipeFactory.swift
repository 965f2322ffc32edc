import BridgeCore
import FileSink
import Foundation
import Logging
import Pipeline
import PostgresSource
import Processing

/// Builds pipes from the configuration: sinks (sharing clients where the connection settings
/// are equal) and the dead-letter target.
public final class PipeFactory {
    public let config: BridgeConfig
    let logger: Logger
    let version: String
    /// The sink kinds, each made by its module.
    let registry: ConfigRegistry
    /// Clients shared by sinks with equal connection settings, across pipes.
    private let clients = SharedClients()

    public init(config: BridgeConfig, registry: ConfigRegistry = .standard, version: String, logger: Logger) {
        self.config = config
        self.registry = registry
        self.version = version
        self.logger = logger
    }

    /// The pipe's source (not started).
    public func makeSource(for pipe: PipeConfig) throws -> any ChangeSource {
        switch pipe.source {
        case .replication(let replication):
            return ReplicationSource(
                pipeName: pipe.name, config: replication, postgres: config.postgres,
                stateDirectory: config.stateDirectory, logger: logger)
        case .outbox(let outbox):
            var listened = Set<String>()
            for other in config.pipes {
                if case .outbox(let source) = other.source { listened.formUnion(source.channels) }
            }
            listened.formUnion(outbox.channels)  // a pipe created through the API is not in the file
            return OutboxSource(
                pipeName: pipe.name, config: outbox, postgres: config.postgres, listenedChannels: listened,
                logger: logger)
        case .notify(let notify):
            return NotifySource(pipeName: pipe.name, config: notify, postgres: config.postgres, logger: logger)
        case .message(let message):
            guard let registration = registry.source(message.kind) else {
                throw ConfigError(
                    path: "pipes.\(pipe.name).source.kind", message: "source kind '\(message.kind)' is not registered")
            }
            return try registration.make(message, SourceMakeContext(pipe: pipe.name, logger: logger))
        }
    }

    public func runner(
        for pipe: PipeConfig, source: any ChangeSource, options: PipeRunner.Options = PipeRunner.Options()
    ) throws -> PipeRunner {
        // Relative file paths (sinks, dead letters) live in state_dir: it exists before they open,
        // whatever the source (a message source keeps no state there itself).
        try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true)
        let routes = pipe.processors.compactMap { processor -> RouteConfig? in
            if case .route(let route) = processor { return route }
            return nil
        }
        let sinks = try pipe.sinks.map { sink in
            PipeSink(
                name: sink.name,
                sink: try makeSink(
                    sink, pipe: pipe.name, source: pipe.source, format: pipe.format,
                    routeDestinations: routes.map(\.destination)),
                delivery: sink.delivery)
        }
        let target = try makeDeadLetterTarget(pipe)
        let fallback: (any EventSink)? = target is FileSink ? nil : try localDeadLetterFile(pipe)
        let deadLetters = DeadLetterQueue(pipe: pipe.name, target: target, fallback: fallback, logger: logger)
        let transform = EventTransform(
            pipe: pipe.name, processors: pipe.processors, format: pipe.format, version: version)
        return PipeRunner(
            name: pipe.name, source: source, sinks: sinks, deadLetters: deadLetters, transform: transform,
            routeSinks: routes.map(\.sinks), options: options, logger: logger)
    }

    /// The sink, made by the registration of its kind.
    public func makeSink(
        _ sink: SinkConfig, pipe: String, source: SourceConfig? = nil, format: EventFormat = .native,
        routeDestinations: [NameTemplate?] = []
    ) throws -> any EventSink {
        guard let registration = registry.sink(sink.kind) else {
            throw ConfigError(
                path: "pipes.\(pipe).sinks.\(sink.name).kind", message: "sink kind '\(sink.kind)' is not registered")
        }
        var context = SinkMakeContext(pipe: pipe, logger: logger, clients: clients)
        (context.format, context.version, context.routeDestinations) = (format, version, routeDestinations)
        context.source = source.map { source in
            if case .message = source { return SinkSourceInfo(postgres: nil, streamID: Self.streamID(source)) }
            return SinkSourceInfo(postgres: config.postgres, streamID: Self.streamID(source))
        }
        return try registration.make(sink, context)
    }

    /// Names a source's stream of events for sinks that record positions.
    static func streamID(_ source: SourceConfig) -> String {
        switch source {
        case .replication(let replication): "slot:\(replication.slot)"
        case .outbox: "outbox"
        case .notify: "notify"
        case .message(let message): message.kind
        }
    }

    /// `<state_dir>/<pipe>.dead_letters.jsonl`: the default target, and where records go that
    /// another target refuses for good.
    func localDeadLetterFile(_ pipe: PipeConfig) throws -> FileSink {
        let path = "\(config.stateDirectory)/\(pipe.name).dead_letters.jsonl"
        try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true)
        return FileSink(config: FileSinkConfig(path: path), logger: logger)
    }

    func makeDeadLetterTarget(_ pipe: PipeConfig) throws -> any EventSink {
        switch pipe.deadLetter {
        case nil:
            return try localDeadLetterFile(pipe)
        case .table:
            return TableDeadLetterSink(postgres: config.postgres)
        case .sink(let sink):
            return try makeSink(sink, pipe: pipe.name)
        }
    }
}
