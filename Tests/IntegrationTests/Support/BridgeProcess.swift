import Foundation

/// The real `pgbridge` binary as a child process (crash, memory and CLI tests).
final class BridgeProcess: @unchecked Sendable {
    // @unchecked Sendable: `process` is created in init and only read afterwards.
    let process = Process()
    let stderrPath: String

    init(arguments: [String], directory: String, label: String = "pgbridge") throws {
        guard let binary = TestEnvironment.binary else {
            throw TestFailure("PGBRIDGE_TEST_BINARY is not set: run scripts/test")
        }
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        stderrPath = (directory as NSString).appendingPathComponent("\(label)-\(UUID().uuidString.prefix(6)).stderr")
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Peak resident set size so far (VmHWM), in bytes.
    func peakRSS() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
            return kilobytes.map { $0 * 1024 }
        }
        return nil
    }

    /// Signals the process while it runs (never a reaped pid, which may belong to another process by now).
    func kill(_ signal: Int32) {
        if process.isRunning { Foundation.kill(pid, signal) }
    }

    /// Waits for exit; returns the exit status (SIGKILL'ed: 128+9 style is not reported, -1).
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(SIGKILL)
                throw TestFailure("pgbridge did not exit within \(timeout); stderr: \(stderr.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Runs the binary to completion (CLI tests).
    static func run(_ arguments: [String], directory: String, timeout: Duration = .seconds(60)) async throws -> (
        status: Int32, stderr: String
    ) {
        let process = try BridgeProcess(arguments: arguments, directory: directory)
        let status = try await process.waitForExit(timeout: timeout)
        return (status, process.stderr)
    }
}

enum ConfigFile {
    /// Writes a one-pipe configuration and returns its path.
    static func write(
        directory: String, url: String, tables: [String], slot: String, output: String, extraSource: String = ""
    ) throws -> String {
        let path = (directory as NSString).appendingPathComponent("pgbridge.yaml")
        let yaml = """
            postgres:
              url: \(url)
            state_dir: \(directory)/state
            pipes:
              - name: test
                source:
                  kind: replication
                  tables: [\(tables.map { "\"\($0)\"" }.joined(separator: ", "))]
                  slot: \(slot)
                  publication: \(slot)
                  status_interval: 1s
            \(extraSource.isEmpty ? "" : "      " + extraSource)
                sinks:
                  - kind: file
                    path: \(output)
            """
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
