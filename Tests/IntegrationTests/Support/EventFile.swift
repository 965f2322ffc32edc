import Foundation
import Testing

/// Reads a JSONL sink file (only complete lines).
enum EventFile {
    static func read(_ path: String) -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: path), let end = data.lastIndex(of: 0x0A) else {
            return []
        }
        return data[..<end].split(separator: 0x0A).compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any]
        }
    }

    /// Polls until `predicate` holds for the file's events, or the timeout passes.
    static func waitFor(
        _ path: String, timeout: Duration = .seconds(90), _ predicate: ([[String: Any]]) -> Bool
    ) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let events = read(path)
            if predicate(events) { return events }
            if ContinuousClock.now > deadline {
                Issue.record("timed out after \(timeout) waiting for the events in \(path): \(events.count) so far")
                return events
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

extension EventFile {
    /// Lines in a (possibly very large) event file, read in 8 MiB chunks.
    static func countLines(_ path: String) throws -> Int {
        guard let handle = FileHandle(forReadingAtPath: path) else { return 0 }
        defer { try? handle.close() }
        var count = 0
        while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty {
            count += chunk.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        }
        return count
    }

    /// Per-key order under at-least-once delivery: taking each event id's first delivery only,
    /// `value` must increase for every `key`. Returns the violations and each key's last value.
    static func firstDeliveryOrder(
        _ events: [[String: Any]], key: String, value: String, where include: ([String: Any]) -> Bool = { _ in true }
    ) -> (violations: Int, last: [Int: Int]) {
        var seen: Set<String> = []
        var last: [Int: Int] = [:]
        var violations = 0
        for event in events where include(event) {
            guard let id = event.eventID, seen.insert(id).inserted, let row = event.after,
                let k = row[key] as? Int, let v = row[value] as? Int
            else { continue }
            if let previous = last[k], v <= previous { violations += 1 }
            last[k] = v
        }
        return (violations, last)
    }
}

extension Dictionary where Key == String, Value == Any {
    var op: String? { self["op"] as? String }
    var after: [String: Any]? { self["after"] as? [String: Any] }
    var before: [String: Any]? { self["before"] as? [String: Any] }
    var key: [String: Any]? { self["key"] as? [String: Any] }
    var table: String? { (self["source"] as? [String: Any])?["table"] as? String }
    var eventID: String? { self["id"] as? String }
}
