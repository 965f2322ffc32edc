import Foundation

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
        _ path: String, timeout: Duration = .seconds(30), _ predicate: ([[String: Any]]) -> Bool
    ) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let events = read(path)
            if predicate(events) { return events }
            if ContinuousClock.now > deadline { return events }
            try await Task.sleep(for: .milliseconds(100))
        }
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
