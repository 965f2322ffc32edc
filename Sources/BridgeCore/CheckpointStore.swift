import Foundation

/// The pipe's record of the newest commit end LSN that every sink acknowledged.
///
/// PostgreSQL persists a slot's confirmed position lazily, so after a server crash it can move
/// backwards and resend transactions. The source skips transactions at or below this record,
/// which keeps re-delivery to what was not yet confirmed. The file is replaced atomically
/// (write, fsync, rename, fsync the directory).
public final class CheckpointStore: @unchecked Sendable {
    // @unchecked Sendable: `lock` guards `cached`; file writes happen under the same lock.
    public struct Record: Sendable, Equatable {
        public var lsn: LSN
        /// PostgreSQL system identifier (IDENTIFY_SYSTEM), so a record is never applied to another cluster.
        public var systemID: String
        public var slot: String
        /// Server timeline (IDENTIFY_SYSTEM): a promoted standby starts a new one.
        public var timeline: String

        public init(lsn: LSN, systemID: String, slot: String, timeline: String = "") {
            self.lsn = lsn
            self.systemID = systemID
            self.slot = slot
            self.timeline = timeline
        }
    }

    public let path: String
    private let lock = NSLock()
    private var cached: Record?

    public init(directory: String, pipe: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.path = Self.path(directory: directory, pipe: pipe)
    }

    public static func path(directory: String, pipe: String) -> String {
        (directory as NSString).appendingPathComponent("\(pipe).checkpoint")
    }

    /// The stored record, or nil when there is none (or it cannot be parsed).
    public func load() -> Record? {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        guard let lsnText = fields["lsn"], let lsn = LSN(lsnText), let system = fields["system"],
            let slot = fields["slot"]
        else { return nil }
        cached = Record(lsn: lsn, systemID: system, slot: slot, timeline: fields["timeline"] ?? "")
        return cached
    }

    /// Durably replaces the record. Never moves backwards for the same system and slot, unless
    /// `resetting` (the server's history changed: a restored backup, a failover).
    public func save(_ record: Record, resetting: Bool = false) throws {
        lock.lock()
        defer { lock.unlock() }
        if !resetting, let cached, cached.systemID == record.systemID, cached.slot == record.slot,
            cached.timeline == record.timeline,
            cached.lsn >= record.lsn
        {
            return
        }
        let text = "lsn \(record.lsn)\nsystem \(record.systemID)\nslot \(record.slot)\ntimeline \(record.timeline)\n"
        try DurableFile.replace(path, with: text.utf8)
        cached = record
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var reason: String

    public init(path: String, operation: String) {
        self.path = path
        self.operation = operation
        self.reason = String(cString: strerror(errno))
    }

    public var description: String {
        "cannot \(operation) the checkpoint file \(path): \(reason). Check that state_dir is writable"
    }
}
