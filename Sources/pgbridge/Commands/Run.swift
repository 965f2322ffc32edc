import ArgumentParser
import BridgeCore
import FileSink
import Foundation
import Logging
import Pipeline
import PostgresSource
import ServiceLifecycle

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
        var runners: [PipeRunner] = []
        let factory = PipeFactory(config: config, logger: logger)
        for pipe in config.pipes {
            let source: any ChangeSource
            switch pipe.source {
            case .replication(let replication):
                source = ReplicationSource(
                    pipeName: pipe.name, config: replication, postgres: config.postgres,
                    stateDirectory: config.stateDirectory, logger: logger)
            case .outbox(let outbox):
                source = OutboxSource(pipeName: pipe.name, config: outbox, postgres: config.postgres, logger: logger)
            case .notify(let notify):
                source = NotifySource(pipeName: pipe.name, config: notify, postgres: config.postgres, logger: logger)
            }
            var runnerOptions = PipeRunner.Options()
            runnerOptions.stopAfterEvents = stopAfterEvents
            do {
                runners.append(try factory.runner(for: pipe, source: source, options: runnerOptions))
            } catch {
                throw ExitCodes.fail(error)
            }
        }
        logger.info(
            "pgbridge \(PGBridge.version) starting",
            metadata: ["postgres": "\(config.postgres.redactedURL)", "pipes": "\(config.pipes.map(\.name))"])
        let group = ServiceGroup(
            configuration: .init(
                services: runners.map {
                    .init(
                        service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .gracefullyShutdownGroup)
                },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            throw ExitCodes.fail(error)
        }
    }
}
