import ArgumentParser
import BridgeCore
import BridgeRuntime
import FileSink
import Logging
import Pipeline
import PostgresSource

/// `pgbridge snapshot PIPE TABLE`: re-read one table into a pipe's sinks.
struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read one table (a hypertable chunk by chunk) into a pipe's sinks as read events.",
        discussion: """
            Uses a fresh consistent snapshot of the table; works whether or not `pgbridge run` is running.
            Changes committed while it reads are also streamed by the pipe, so consumers may see a row twice.
            """)

    @Argument(help: "Pipe name from the configuration.") var pipe: String
    @Argument(help: "Table: schema.table (or a continuous aggregate's view).") var table: String
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try options.loadConfig()
        let logger = LoggingSetup.bootstrap(level: options.logLevel)
        guard let pipeConfig = config.pipes.first(where: { $0.name == pipe }) else {
            throw ExitCodes.fail(
                ConfigError(
                    path: "pipes",
                    message: "no pipe named '\(pipe)': one of \(config.pipes.map(\.name).joined(separator: ", "))"))
        }
        guard let pattern = TablePattern(parsing: table), pattern.table != nil else {
            throw ExitCodes.fail(ConfigError(path: "", message: "'\(table)' is not a table name: write schema.table"))
        }
        guard case .replication(let replication) = pipeConfig.source else {
            throw ExitCodes.fail(
                ConfigError(
                    path: "pipes",
                    message: "pipe '\(pipe)' does not capture through replication: snapshots need a replication pipe"))
        }
        let source = TableSnapshotSource(table: pattern, config: replication, postgres: config.postgres, logger: logger)
        do {
            let runner = try PipeFactory(config: config, version: PGBridge.version, logger: logger).runner(
                for: pipeConfig, source: source)
            try await runner.run()
            print("snapshot of \(table): \(runner.stats.events) events delivered to pipe \(pipe)")
        } catch {
            throw ExitCodes.fail(error)
        }
    }
}
