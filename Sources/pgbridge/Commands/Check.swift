import ArgumentParser
import BridgeCore
import BridgeRuntime
import FileSink
import Foundation
import HTTPSink
import KafkaSink
import Logging
import PostgresClient
import PostgresSink
import PostgresSource

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the configuration and check PostgreSQL and the sinks; one line per problem.",
        discussion:
            "Exit codes: 0 no problem; 1 a dependency is unreachable; 2 configuration error; 3 the database is not ready for capture."
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Validate the configuration only: no connection to PostgreSQL or the sinks.")
    var offline = false

    func run() async throws {
        let config = try options.loadConfig()
        if offline {
            print("ok: configuration valid, \(config.pipes.count) pipe(s) (offline: nothing was connected)")
            return
        }
        var problems: [String] = []
        var unreachable = false
        for (index, pipe) in config.pipes.enumerated() {
            do {
                let report = try await DatabaseAdmin.checkPipe(pipe, index: index, postgres: config.postgres)
                problems += report.problems.map { "pipe \(pipe.name): \($0)" }
                for note in report.notes { print("note: pipe \(pipe.name): \(note)") }
            } catch let error as PostgresError where error.code == .connectionFailed {
                problems.append("pipe \(pipe.name): \(error.message)")
                unreachable = true
                break
            } catch {
                problems.append("pipe \(pipe.name): \(error)")
                unreachable = true
            }
            for sink in pipe.sinks {
                if let problem = Self.check(sink) { problems.append("pipe \(pipe.name): \(problem)") }
                if sink.settings is PostgresSinkConfig {
                    // Connects to the target and reads its catalog; creates nothing.
                    do {
                        let found = try await Self.targetProblems(sink, pipe: pipe, config: config)
                        problems += found.map { "pipe \(pipe.name): sink \(sink.name): \($0)" }
                    } catch {
                        problems.append("pipe \(pipe.name): sink \(sink.name): \(error)")
                        unreachable = true
                    }
                    continue
                }
                if let problem = await Self.reach(sink, pipe: pipe, config: config) {
                    problems.append("pipe \(pipe.name): sink \(sink.name): \(problem)")
                    unreachable = true
                }
            }
        }
        if let api = config.api, !unreachable {
            let notes = try? await DatabaseAdmin.apiNotes(
                postgres: config.postgres, restProxy: api.jwt != nil || api.anonymousRole != nil)
            for note in notes ?? [] { print("note: api: \(note)") }
        }
        if let problem = Self.checkWritable(directory: config.stateDirectory, create: true) {
            problems.append("state_dir: \(problem)")
        }
        for problem in problems { Terminal.error("problem: \(problem)") }
        if problems.isEmpty {
            print("ok: configuration valid, PostgreSQL reachable, \(config.pipes.count) pipe(s) ready")
            return
        }
        throw ExitCode(unreachable ? ExitCodes.runtime : ExitCodes.prerequisite)
    }

    static func targetProblems(_ sink: SinkConfig, pipe: PipeConfig, config: BridgeConfig) async throws -> [String] {
        var logger = Logger(label: "pgbridge.check")
        logger.logLevel = .critical
        let made = try PipeFactory(config: config, version: PGBridge.version, logger: logger).makeSink(
            sink, pipe: pipe.name, source: pipe.source)
        guard let postgres = made as? PostgresSink else { return [] }
        let tables: [TablePattern] =
            switch pipe.source {
            case .replication(let replication): replication.tables
            default: []
            }
        return try await postgres.targetProblems(tables: tables)
    }

    static func check(_ sink: SinkConfig) -> String? {
        guard let file = sink.settings as? FileSinkConfig, file.path != "-" else { return nil }
        let directory = (file.path as NSString).deletingLastPathComponent
        return checkWritable(directory: directory.isEmpty ? "." : directory, create: false)
            .map { "file sink \(file.path): \($0)" }
    }

    /// Connects to a network sink (Kafka, RabbitMQ, Redis; HTTP with OAuth2 fetches a token) and
    /// disconnects; nil when it answered within 15 s.
    static func reach(_ sink: SinkConfig, pipe: PipeConfig, config: BridgeConfig) async -> String? {
        if sink.settings is FileSinkConfig { return nil }
        if let http = sink.settings as? HTTPSinkConfig, http.oauth2 == nil { return nil }
        var logger = Logger(label: "pgbridge.check")
        logger.logLevel = .critical
        do {
            let made = try PipeFactory(config: config, version: PGBridge.version, logger: logger).makeSink(
                sink, pipe: pipe.name, source: pipe.source)
            return try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    try await made.open()
                    try await (made as? KafkaSink)?.checkBrokers()
                    await made.close()
                    return nil
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(15))
                    return "no answer within 15 s from \(made.description)"
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
        } catch {
            return "\(error)"
        }
    }

    static func checkWritable(directory: String, create: Bool) -> String? {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            if create { return nil }  // created on start
            return "directory \(directory) does not exist: create it"
        }
        if !isDirectory.boolValue { return "\(directory) is not a directory" }
        if access(directory, W_OK) != 0 { return "directory \(directory) is not writable: fix its permissions" }
        return nil
    }
}
