import Foundation

/// What `scripts/test` provides: real PostgreSQL clusters, the built binary, a scratch directory.
enum TestEnvironment {
    static let environment = ProcessInfo.processInfo.environment

    static var postgresURL: String? { environment["PGBRIDGE_TEST_PG_URL"] }
    /// A second cluster that tests may restart or reconfigure.
    static var disruptivePostgresURL: String? { environment["PGBRIDGE_TEST_PG2_URL"] }
    static var disruptivePostgresControl: String? { environment["PGBRIDGE_TEST_PG2_CTL"] }
    static var binary: String? { environment["PGBRIDGE_TEST_BINARY"] }

    static var hasPostgres: Bool { postgresURL != nil }
    static var hasDisruptivePostgres: Bool {
        disruptivePostgresURL != nil && disruptivePostgresControl != nil && binary != nil
    }
    static var hasBinary: Bool { postgresURL != nil && binary != nil }
    /// The Python interpreter of the virtual environment holding PostgREST's client library.
    static var postgrestPython: String? { environment["PGBRIDGE_TEST_POSTGREST_PYTHON"] }
    /// The repository's root directory.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A fresh directory for one test.
    static func scratchDirectory(_ name: String) throws -> String {
        let base = environment["PGBRIDGE_TEST_TMP"] ?? NSTemporaryDirectory()
        let path = (base as NSString).appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// `url` with its database replaced.
    static func url(_ url: String, database: String) -> String {
        guard let slash = url.range(of: "/", options: .backwards),
            url.distance(from: url.startIndex, to: slash.lowerBound) > 12
        else {
            return url + "/" + database
        }
        let rest = url[slash.upperBound...]
        let query = rest.firstIndex(of: "?").map { String(rest[$0...]) } ?? ""
        return String(url[..<slash.upperBound]) + database + query
    }

    /// Runs a control command (`pgctl2 restart` …) and waits for it.
    static func control(_ arguments: [String]) throws {
        guard let tool = disruptivePostgresControl else {
            throw TestFailure("PGBRIDGE_TEST_PG2_CTL is not set: run scripts/test")
        }
        let result = try shell(([tool] + arguments).map { "'\($0)'" }.joined(separator: " "))
        guard result.status == 0 else {
            throw TestFailure(
                "\(tool) \(arguments.joined(separator: " ")) failed (status \(result.status)): \(result.output.suffix(1000))"
            )
        }
    }
}

extension TestEnvironment {
    static var redisURL: String? { environment["PGBRIDGE_TEST_REDIS_URL"] }
    static var rabbitMQURL: String? { environment["PGBRIDGE_TEST_RABBITMQ_URL"] }
    static var kafkaBrokers: String? { environment["PGBRIDGE_TEST_KAFKA_BROKERS"] }

    /// `shell` on a thread of its own: for commands that may run for seconds (consumers), so that
    /// they do not hold one of the few threads of Swift's cooperative pool (which in-process
    /// servers such as the HTTP test receiver need).
    static func shellAsync(_ command: String) async throws -> (status: Int32, output: String) {
        try await offPool { try shell(command) }
    }

    /// Runs blocking work (a long SQL statement …) on a thread of its own, off Swift's
    /// cooperative pool, which in-process servers of other tests need.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                do {
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }.start()
        }
    }

    /// Runs a shell command (`ChildSpawn` + waitpid) and returns its exit status and output.
    static func shell(_ command: String) throws -> (status: Int32, output: String) {
        let log = NSTemporaryDirectory() + "pgbridge-shell-\(UUID().uuidString)"
        defer { unlink(log) }
        let pid = try ChildSpawn.start("/bin/sh", ["-c", "\(command) >'\(log)' 2>&1"], stdout: .null, stderr: .null)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
