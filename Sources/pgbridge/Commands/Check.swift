import ArgumentParser
import BridgeCore
import Foundation
import PostgresSource

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the configuration and check PostgreSQL and the sinks; one line per problem.",
        discussion:
            "Exit codes: 0 no problem; 1 a dependency is unreachable; 2 configuration error; 3 the database is not ready for capture."
    )

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try options.loadConfig()
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
            }
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

    static func check(_ sink: SinkConfig) -> String? {
        switch sink.kind {
        case .file(let file):
            guard file.path != "-" else { return nil }
            let directory = (file.path as NSString).deletingLastPathComponent
            return checkWritable(directory: directory.isEmpty ? "." : directory, create: false)
                .map { "file sink \(file.path): \($0)" }
        case .kafka, .rabbitmq, .redis, .http:
            return nil
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
