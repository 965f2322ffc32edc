import ArgumentParser
import BridgeCore
import BridgeRuntime
import PostgresClient
import PostgresSource

@main
struct PGBridge: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "pgbridge",
        abstract: "Streams PostgreSQL/TimescaleDB changes to files, Kafka, RabbitMQ, Redis and HTTP.",
        discussion: """
            Exit codes: 0 success; 1 runtime failure or unreachable dependency; 2 configuration error;
            3 the database is not ready for capture (wal_level, missing table, replica identity, slot in use or lost).
            """,
        version: version,
        subcommands: [
            Run.self, Check.self, Slots.self, Snapshot.self, Setup.self, Version.self, BenchDecode.self, BenchSink.self,
        ]
    )
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Configuration file.")
    var config: String = "pgbridge.yaml"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    /// `--url`: a password in it is visible to every user of the machine (`ps`, `/proc`) and
    /// stays in shell history, so say so.
    func postgres(url: String) -> PostgresConfig {
        if ConnectionString(url)?.hasPassword == true {
            Terminal.error(
                "warning: the password in --url can be seen by other users of this machine (ps, /proc) and stays in "
                    + "your shell history: set PGPASSWORD (or a ~/.pgpass entry) instead, or use postgres.url in the "
                    + "configuration file with ${VARIABLE} for the password")
        }
        return PostgresConfig(url: url)
    }

    /// Loads the configuration; a problem is printed and exits with code 2.
    func loadConfig() throws -> BridgeConfig {
        do {
            return try BridgeConfig.load(path: config, registry: .standard)
        } catch {
            throw ExitCodes.fail(error)
        }
    }
}
