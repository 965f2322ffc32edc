import BridgeCore
import FileSink
import Foundation
import Logging
import Pipeline
import Processing

@testable import PostgresSource

/// Runs one replication pipe inside the test process, writing to a JSONL file (plus `sinks`).
final class InProcessPipe: @unchecked Sendable {
    // @unchecked Sendable: `task` is set once in start() before any concurrent use.
    let runner: PipeRunner
    /// The replication slot the pipe reads.
    let slot: String
    let outputPath: String
    let directory: String
    private var task: Task<Void, any Error>?

    let deadLetterPath: String

    init(
        database: TestDatabase, name: String, tables: [String], slot: String? = nil, sinks: [PipeSink] = [],
        withFileSink: Bool = true, transform: EventTransform? = nil, routeSinks: [[String]?] = [],
        options: PipeRunner.Options = PipeRunner.Options()
    ) throws {
        directory = try TestEnvironment.scratchDirectory(name)
        outputPath = (directory as NSString).appendingPathComponent("events.jsonl")
        var logger = Logger(label: "test")
        logger.logLevel =
            Logger.Level(rawValue: TestEnvironment.environment["PGBRIDGE_TEST_LOG_LEVEL"] ?? "warning") ?? .warning
        let slot = slot ?? "pgbridge_\(database.name)"
        self.slot = slot
        let config = ReplicationSourceConfig(
            tables: tables.compactMap { TablePattern(parsing: $0) }, slot: slot,
            publication: "pgbridge_\(database.name)", statusInterval: .seconds(1))
        let source = ReplicationSource(
            pipeName: name, config: config, postgres: PostgresConfig(url: database.url),
            stateDirectory: (directory as NSString).appendingPathComponent("state"), logger: logger)
        let fileSink = FileSink(config: FileSinkConfig(path: outputPath), logger: logger)
        deadLetterPath = (directory as NSString).appendingPathComponent("dead_letters.jsonl")
        let deadLetters = DeadLetterQueue(
            pipe: name, target: FileSink(config: FileSinkConfig(path: deadLetterPath), logger: logger), logger: logger)
        runner = PipeRunner(
            name: name, source: source,
            sinks: (withFileSink ? [PipeSink(name: "file", sink: fileSink)] : []) + sinks, deadLetters: deadLetters,
            transform: transform, routeSinks: routeSinks, options: options, logger: logger)
    }

    func start() {
        let runner = self.runner
        task = Task { try await runner.run() }
    }

    /// Starts the pipe and returns once it streams from its slot: later writes are captured.
    func startStreaming(_ database: TestDatabase) async throws {
        start()
        try await waitUntilStreaming(database, slot: slot)
    }

    /// Waits until the pipe is streaming, so later writes are captured.
    func waitUntilStreaming(_ database: TestDatabase, slot: String) async throws {
        try await waitForSlot(database, slot, timeout: .seconds(20))
    }

    func events() -> [[String: Any]] { EventFile.read(outputPath) }
    func deadLetters() -> [[String: Any]] { EventFile.read(deadLetterPath) }

    static var testLogger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel =
            Logger.Level(rawValue: TestEnvironment.environment["PGBRIDGE_TEST_LOG_LEVEL"] ?? "warning") ?? .warning
        return logger
    }

    func waitForEvents(count: Int, timeout: Duration = .seconds(30)) async throws -> [[String: Any]] {
        try await EventFile.waitFor(outputPath, timeout: timeout) { $0.count >= count }
    }

    func stop() async throws {
        runner.stop()
        try await task?.value
    }
}

/// Waits for a walsender streaming from `slot`. `active` is already true while
/// CREATE_REPLICATION_SLOT waits for its consistent point; only a walsender running
/// START_REPLICATION means changes from now on are captured.
func waitForSlot(_ db: TestDatabase, _ slot: String, timeout: Duration = .seconds(30)) async throws {
    // Under a full parallel run a new slot may wait a while for its consistent point.
    let timeout = max(timeout, .seconds(90))
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let streaming = try? db.value(
            "SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid "
                + "WHERE s.slot_name = '\(slot)' AND a.query LIKE 'START_REPLICATION%'")
        if streaming == "1" { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestFailure("no walsender streaming from \(slot) within \(timeout)")
}
