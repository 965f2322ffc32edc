import Foundation
import Testing

/// Reads Redis back with its standard client, `redis-cli`.
enum RedisCLI {
    static var redis2URL: String? { TestEnvironment.environment["PGBRIDGE_TEST_REDIS2_URL"] }
    static var redis2Control: String? { TestEnvironment.environment["PGBRIDGE_TEST_REDIS2_CTL"] }

    /// Runs one command; returns its raw output lines.
    static func run(_ url: String, _ args: [String]) throws -> [String] {
        let quoted = args.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let result = try TestEnvironment.shell("redis-cli -u '\(url)' \(quoted)")
        guard result.status == 0 else { throw TestFailure("redis-cli \(args.first ?? "") failed: \(result.output)") }
        var lines = result.output.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// Entries of a stream: each entry's fields (id, op, event).
    static func stream(_ url: String, _ key: String) throws -> [[String: String]] {
        let lines = try run(url, ["XRANGE", key, "-", "+"])
        var entries: [[String: String]] = []
        var index = 0
        while index + 6 < lines.count {
            var fields: [String: String] = ["entry": lines[index]]
            for pair in 0..<3 { fields[lines[index + 1 + pair * 2]] = lines[index + 2 + pair * 2] }
            entries.append(fields)
            index += 7
        }
        return entries
    }

    /// The events in a stream, decoded.
    static func streamEvents(_ url: String, _ key: String) throws -> [[String: Any]] {
        try stream(url, key).compactMap { entry in
            entry["event"].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    static func hash(_ url: String, _ key: String) throws -> [String: String] {
        let lines = try run(url, ["HGETALL", key])
        var result: [String: String] = [:]
        var index = 0
        while index + 1 < lines.count {
            result[lines[index]] = lines[index + 1]
            index += 2
        }
        return result
    }

    static func waitForStream(
        _ url: String, _ key: String, count: Int, timeout: Duration = .seconds(30)
    ) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let length = Int(try run(url, ["XLEN", key]).first ?? "0") ?? 0
            if length >= count { return try streamEvents(url, key) }
            if ContinuousClock.now > deadline {
                Issue.record("timed out after \(timeout) waiting for \(count) entries in \(key): \(length) so far")
                return try streamEvents(url, key)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Waits until the stream holds a row event for every id in `ids`. At least once delivery
    /// can put duplicates in the stream before the last rows, so its length alone says nothing.
    static func waitForStreamRows(
        _ url: String, _ key: String, ids: Set<Int>, timeout: Duration = .seconds(60)
    ) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let events = try streamEvents(url, key)
            let seen = Set(events.compactMap { $0.after?["id"] as? Int })
            if seen.isSuperset(of: ids) { return events }
            if ContinuousClock.now > deadline {
                Issue.record(
                    "timed out after \(timeout) waiting for \(ids.count) rows in \(key): \(seen.intersection(ids).count) so far"
                )
                return events
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    static func control(_ action: String) async throws {
        guard let tool = redis2Control else { throw TestFailure("PGBRIDGE_TEST_REDIS2_CTL is not set") }
        let result = try await TestEnvironment.shellAsync("'\(tool)' \(action)")
        guard result.status == 0 else { throw TestFailure("redisctl2 \(action) failed: \(result.output)") }
    }
}
