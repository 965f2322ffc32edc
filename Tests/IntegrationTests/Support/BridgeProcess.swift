import Foundation
import Synchronization

/// The real `pgbridge` binary as a child process (crash, memory and CLI tests), spawned with
/// `ChildSpawn` (not Foundation's `Process`, whose exit detection other children can delay).
final class BridgeProcess: Sendable {
    let pid: pid_t
    let stderrPath: String
    /// The exit status once `waitpid` reaped the process. Signalling and reaping happen under this
    /// lock, so a signal never reaches a pid that was reaped (and maybe reused).
    private let exitStatus = Mutex<Int32?>(nil)

    /// Where standard output goes when the caller keeps it (`keepStdout`); else nil (discarded).
    let stdoutPath: String?

    init(arguments: [String], directory: String, label: String = "pgbridge", keepStdout: Bool = false) throws {
        guard let binary = TestEnvironment.binary else {
            throw TestFailure("PGBRIDGE_TEST_BINARY is not set: run scripts/test")
        }
        let base = (directory as NSString).appendingPathComponent("\(label)-\(UUID().uuidString.prefix(6))")
        stderrPath = base + ".stderr"
        stdoutPath = keepStdout ? base + ".stdout" : nil
        pid = try ChildSpawn.start(
            binary, arguments, stdout: stdoutPath.map { .file($0) } ?? .null, stderr: .file(stderrPath))
    }

    var stdout: String { stdoutPath.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "" }

    var isRunning: Bool { exitStatus.withLock { reap(&$0) == nil } }

    /// Reaps the process if it exited; its status, or nil while it runs.
    private func reap(_ status: inout Int32?) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        if result == pid {
            status = ChildSpawn.terminationStatus(raw)
        } else if result < 0 && errno != EINTR {
            status = -1  // not our child any more: nothing to wait for
        }
        return status
    }

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
        exitStatus.withLock { status in
            if reap(&status) == nil { _ = Foundation.kill(pid, signal) }
        }
    }

    /// Waits for exit; returns the exit code, or the signal's number when a signal ended it.
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = exitStatus.withLock({ reap(&$0) }) { return status }
            if ContinuousClock.now > deadline {
                let state = Self.processState(pid)
                kill(SIGKILL)
                throw TestFailure(
                    "pgbridge did not exit within \(timeout) (process state: \(state)); stderr: \(stderr.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The state letter and kernel wait channel of a process, for failure messages.
    private static func processState(_ pid: pid_t) -> String {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let state = stat.split(separator: ")").last?.split(separator: " ").first.map(String.init) ?? "?"
        let channel = (try? String(contentsOfFile: "/proc/\(pid)/wchan", encoding: .utf8)) ?? "?"
        return "\(state), wchan \(channel)"
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits until standard error holds `text` `times` times; fails at once if pgbridge exits.
    func waitForLog(_ text: String, times: Int = 1, timeout: Duration = .seconds(60)) async throws {
        try await waitFor("pgbridge to log \"\(text)\" (\(times)×)", timeout: timeout) {
            guard isRunning else { throw TestFailure("pgbridge exited: \(stderr.suffix(3000))") }
            return stderr.components(separatedBy: text).count - 1 >= times
        }
    }

    /// Runs the binary to completion (CLI tests).
    static func run(_ arguments: [String], directory: String, timeout: Duration = .seconds(60)) async throws -> (
        status: Int32, stderr: String
    ) {
        let process = try BridgeProcess(arguments: arguments, directory: directory)
        let status = try await process.waitForExit(timeout: timeout)
        return (status, process.stderr)
    }
}

extension BridgeProcess {
    /// `pgbridge run --config <config>` logging at info, in `directory`.
    static func run(config: String, directory: String) throws -> BridgeProcess {
        try BridgeProcess(arguments: ["run", "--config", config, "--log-level", "info"], directory: directory)
    }
}

enum ConfigFile {
    /// Writes `yaml` as `pgbridge.yaml` in `directory`; returns its path.
    static func write(_ yaml: String, in directory: String) throws -> String {
        let path = (directory as NSString).appendingPathComponent("pgbridge.yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

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

    /// Writes a configuration with the HTTP API on a free port (the admin token of the API
    /// tests, plus `api` settings) and `rest` (pipes, other sections) as given; returns its path.
    static func writeWithAPI(
        directory: String, url: String, api: String = "", rest: String = "", name: String = "pgbridge.yaml"
    ) throws -> String {
        let path = (directory as NSString).appendingPathComponent(name)
        try """
        postgres: {url: "\(url)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", admin_token: \(HTTPAPITests.adminToken)\(api.isEmpty ? "" : ", " + api)}
        \(rest)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
