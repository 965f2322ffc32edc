import ArgumentParser
import BridgeCore
import Foundation
import PostgresSource

struct Slots: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List replication slots with lag and WAL status.",
        subcommands: [List.self, Drop.self],
        defaultSubcommand: List.self)

    struct Connection: ParsableArguments {
        @OptionGroup var global: GlobalOptions

        @Option(help: "PostgreSQL URL (instead of postgres.url from the configuration).")
        var url: String?

        func postgres() throws -> PostgresConfig {
            if let url { return global.postgres(url: url) }
            do {
                return try SlotsConfigView.load(path: global.config).postgres
            } catch {
                throw ExitCodes.fail(error)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List replication slots.")

        @OptionGroup var connection: Connection

        func run() async throws {
            let postgres = try connection.postgres()
            let rows: [DatabaseAdmin.SlotRow]
            do {
                rows = try await DatabaseAdmin.listSlots(postgres: postgres)
            } catch {
                throw ExitCodes.fail(error)
            }
            let header = [
                "NAME", "PLUGIN", "DATABASE", "ACTIVE", "CONFIRMED_LSN", "LAG_BYTES", "WAL_STATUS", "SAFE_WAL_SIZE",
            ]
            let table = rows.map { row in
                [
                    row.name, row.plugin, row.database,
                    row.active ? "yes (pid \(row.activePID.map(String.init) ?? "?"))" : "no",
                    row.confirmedFlush, row.lagBytes.map(String.init) ?? "-", row.walStatus,
                    row.safeWalSize.map(String.init) ?? "-",
                ]
            }
            print(TextTable.render([header] + table))
            for row in rows where row.walStatus == "lost" {
                Terminal.error(
                    "warning: slot \(row.name) is lost: run `pgbridge slots drop \(row.name)` and restart pgbridge")
            }
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop a replication slot (its retained WAL is released).")

        @Argument(help: "Slot name.") var name: String
        @OptionGroup var connection: Connection

        func run() async throws {
            let postgres = try connection.postgres()
            do {
                try await DatabaseAdmin.dropSlot(name, postgres: postgres)
            } catch {
                throw ExitCodes.fail(error)
            }
            print("dropped replication slot \(name)")
            forgetCheckpoints()
        }

        /// A pipe whose slot is gone refuses to create it again silently (changes would be
        /// skipped); dropping it here is the operator's decision, so the pipes of this
        /// configuration that used it forget their positions and start at the current one.
        private func forgetCheckpoints() {
            guard let config = try? SlotsConfigView.load(path: connection.global.config) else {
                print(
                    "if a pipe used this slot, delete its <state_dir>/<pipe>.checkpoint before starting it again "
                        + "(or set on_slot_lost: resnapshot on it)")
                return
            }
            for (pipe, slot) in config.slots where slot == name {
                let path = CheckpointStore.path(directory: config.stateDirectory, pipe: pipe)
                if unlink(path) == 0 {
                    print(
                        "pipe \(pipe) forgot its position (\(path)): its next start creates the slot at the current position"
                    )
                }
            }
        }
    }
}

enum TextTable {
    static func render(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var widths = first.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingTrailingSpaces()
        }.joined(separator: "\n")
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }
}
