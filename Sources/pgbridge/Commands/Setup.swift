import ArgumentParser
import BridgeCore
import PostgresSource

struct Setup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install or upgrade the pgbridge SQL objects (outbox, capture trigger, watch/unwatch, mount_bridge).",
        discussion: "Same objects as CREATE EXTENSION pgbridge; safe to run again.")

    @OptionGroup var options: GlobalOptions

    @Option(help: "PostgreSQL URL (instead of postgres.url from the configuration).")
    var url: String?

    func run() async throws {
        let postgres = try url.map { options.postgres(url: $0) } ?? options.loadConfig().postgres
        do {
            switch try await DatabaseSetup.run(postgres: postgres) {
            case .installed(let version): print("installed pgbridge SQL objects, version \(version)")
            case .alreadyCurrent(let version): print("pgbridge SQL objects are up to date (version \(version))")
            case .managedByExtension(let version):
                print(
                    "pgbridge is installed as an extension (version \(version)): upgrade with ALTER EXTENSION pgbridge UPDATE"
                )
            }
        } catch {
            throw ExitCodes.fail(error)
        }
    }
}
