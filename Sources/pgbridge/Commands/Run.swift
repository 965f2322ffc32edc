import ArgumentParser
import BridgeCore
import BridgeRuntime
import FileSink
import Foundation
import HTTPAPI
import Logging
import Metrics
import Pipeline
import PostgresSource
import Prometheus
import ServiceLifecycle
import WireProtocol

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every pipe of the configuration until SIGTERM or SIGINT.",
        discussion: "On SIGTERM/SIGINT in-flight events are delivered and confirmed before exit (code 0).")

    @OptionGroup var options: GlobalOptions

    @Option(help: "Stop gracefully after each pipe delivered this many events (benchmarks, one-off exports).")
    var stopAfterEvents: UInt64?

    func run() async throws {
        let config = try options.loadConfig()
        let logger = LoggingSetup.bootstrap(level: options.logLevel)
        signal(SIGPIPE, SIG_IGN)
        MemoryTuning.apply()
        var runnerOptions = PipeRunner.Options()
        runnerOptions.stopAfterEvents = stopAfterEvents
        let supervisor = PipeSupervisor(
            config: config, version: PGBridge.version,
            store: config.api.map { _ in PipeStore(postgres: config.postgres) },
            keepsRunning: (config.api != nil || config.wire != nil) && stopAfterEvents == nil,
            bufferEvents: config.api?.bufferEvents ?? (config.wire?.pipes == true ? 10_000 : 0),
            bufferBytes: config.api?.bufferBytes ?? 64 << 20,
            runnerOptions: runnerOptions, logger: logger)
        logger.info(
            "pgbridge \(PGBridge.version) starting",
            metadata: ["postgres": "\(config.postgres.redactedURL)", "pipes": "\(config.pipes.map(\.name))"])
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(
                service: supervisor, successTerminationBehavior: .gracefullyShutdownGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup)
        ]
        if let api = config.api {
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let server = APIServer(
                config: api, postgres: config.postgres, supervisor: supervisor, registry: registry,
                version: PGBridge.version, logger: logger)
            services.append(.init(service: server, failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        if let wire = config.wire {
            let catalog = try BridgeCatalog(config: wire, supervisor: supervisor, logger: logger)
            services.append(
                .init(
                    service: WireService(config: wire, catalog: catalog, logger: logger),
                    failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            throw ExitCodes.fail(error)
        }
    }
}
