import BridgeCore
import Foundation

/// Durable progress of a pipe's initial snapshot (`state_dir/<pipe>.snapshot`), so an
/// interrupted snapshot resumes after the last completed chunk or key range. Replaced
/// atomically like the checkpoint file.
final class SnapshotProgress {
    enum Status: String {
        /// Written before the slot is created: a crash before reads began leaves this, and the
        /// next start drops the (unused) slot and starts over.
        case creating
        case inProgress = "in_progress"
        case done
    }

    let path: String
    var status: Status
    /// The slot's consistent point: snapshot events carry it as their `commit_lsn`.
    var consistentPoint: LSN
    /// Units (physical tables or chunks) read completely and acknowledged by every sink.
    var completed: Set<String>
    /// The unit being read and the text of the last acknowledged row's key.
    var position: (unit: String, key: [String])?
    /// Next event ordinal. Each resume starts a new block (`attempt << 40`): rows pushed after
    /// the last save are read again under a new database snapshot and must not reuse ids.
    var ordinal: Int
    var attempt: Int

    init(path: String, consistentPoint: LSN) {
        self.path = path
        self.status = .inProgress
        self.consistentPoint = consistentPoint
        self.completed = []
        self.position = nil
        self.ordinal = 0
        self.attempt = 0
    }

    /// Starts a new block of event ordinals for a resumed snapshot.
    func beginAttempt() {
        attempt += 1
        ordinal = attempt << 40
    }

    static func path(directory: String, pipe: String) -> String {
        (directory as NSString).appendingPathComponent("\(pipe).snapshot")
    }

    /// Forgets the pipe's snapshot progress (a new slot needs a new snapshot).
    static func remove(directory: String, pipe: String) {
        unlink(path(directory: directory, pipe: pipe))
    }

    static func load(path: String) -> SnapshotProgress? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var status: Status?
        var point: LSN?
        var completed: Set<String> = []
        var position: (String, [String])?
        var ordinal = 0
        var attempt = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            switch parts[0] {
            case "status" where parts.count == 2: status = Status(rawValue: parts[1])
            case "consistent_point" where parts.count == 2: point = LSN(parts[1])
            case "ordinal" where parts.count == 2: ordinal = Int(parts[1]) ?? 0
            case "attempt" where parts.count == 2: attempt = Int(parts[1]) ?? 0
            case "done" where parts.count == 2: completed.insert(parts[1])
            case "position" where parts.count == 3:
                if let data = parts[2].data(using: .utf8),
                    let key = (try? JSONSerialization.jsonObject(with: data)) as? [String]
                {
                    position = (parts[1], key)
                }
            default: continue
            }
        }
        guard let status, let point else { return nil }
        let progress = SnapshotProgress(path: path, consistentPoint: point)
        progress.status = status
        progress.completed = completed
        progress.position = position
        progress.ordinal = ordinal
        progress.attempt = attempt
        return progress
    }

    func save() throws {
        var text =
            "status\t\(status.rawValue)\nconsistent_point\t\(consistentPoint)\nordinal\t\(ordinal)\nattempt\t\(attempt)\n"
        for unit in completed.sorted() { text += "done\t\(unit)\n" }
        if let position,
            let data = try? JSONSerialization.data(withJSONObject: position.key),
            let key = String(data: data, encoding: .utf8)
        {
            text += "position\t\(position.unit)\t\(key)\n"
        }
        try DurableFile.replace(path, with: text.utf8)
    }
}
