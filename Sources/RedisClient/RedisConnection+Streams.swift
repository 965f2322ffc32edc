import BridgeCore

/// One entry of a stream: its id and its fields in order. `fields` is nil for an entry that
/// was deleted while pending (XREADGROUP and XAUTOCLAIM report its id only).
public struct RedisStreamEntry: Sendable, Equatable {
    public struct Field: Sendable, Equatable {
        public let name: String
        public let value: [UInt8]
    }

    public let id: String
    public let fields: [Field]?

    /// The value of the first field called `name`.
    public func value(_ name: String) -> [UInt8]? { fields?.first { $0.name == name }?.value }
}

/// Stream reads with consumer groups: what a Redis source reads with (XGROUP, XREADGROUP,
/// XACK, XAUTOCLAIM, XPENDING). Errors name the command and the stream.
extension RedisConnection {
    /// Creates `group` on `stream` (and the stream when missing) starting at `start` (`$`: new
    /// entries only, `0`: everything). False when the group exists already.
    @discardableResult
    public func createGroup(stream: String, group: String, start: String = "$") throws -> Bool {
        switch try query(["XGROUP", "CREATE", stream, group, start, "MKSTREAM"]) {
        case .error(let message) where message.hasPrefix("BUSYGROUP"): return false
        case .error(let message): throw streamError("XGROUP CREATE", stream, message)
        default: return true
        }
    }

    /// Entries for `consumer` of `group`: new ones (`pending` false: never delivered to any
    /// consumer of the group), or the ones already delivered to this consumer and not yet
    /// acknowledged (`pending` true, from the start). Waits up to `block` for new entries (nil:
    /// not at all), at most half the connection's timeout (a longer wait would look like a lost
    /// connection). `after` continues a read of pending entries after these ids (one per stream).
    public func readGroup(
        streams: [String], group: String, consumer: String, count: Int, block: Duration? = nil,
        pending: Bool = false, after: [String]? = nil
    ) throws -> [(stream: String, entries: [RedisStreamEntry])] {
        var args = ["XREADGROUP", "GROUP", group, consumer, "COUNT", String(count)]
        if let block {
            let wait = min(block, timeout / 2)
            args += ["BLOCK", String(max(1, wait.nanosecondCount / 1_000_000))]
        }
        args += ["STREAMS"] + streams + (after ?? Array(repeating: pending ? "0" : ">", count: streams.count))
        switch try query(args) {
        case .null, .array([]):
            return []  // BLOCK timed out
        case .error(let message):
            throw streamError("XREADGROUP", streams.joined(separator: ", "), message)
        case .array(let perStream):
            return perStream.compactMap { item in
                guard case .array(let pair) = item, pair.count == 2, let name = pair[0].text else { return nil }
                return (name, Self.streamEntries(pair[1]))
            }
        default:
            return []
        }
    }

    /// Acknowledges entries of `group`; returns how many were pending.
    @discardableResult
    public func acknowledge(stream: String, group: String, ids: [String]) throws -> Int {
        guard !ids.isEmpty else { return 0 }
        switch try query(["XACK", stream, group] + ids) {
        case .integer(let count): return Int(count)
        case .error(let message): throw streamError("XACK", stream, message)
        default: return 0
        }
    }

    /// Takes over entries of `group` that were delivered to some consumer at least `minIdle`
    /// ago and never acknowledged (a consumer that crashed), giving them to `consumer`. Returns
    /// the entries and the cursor to continue from (`0-0` when the scan is done).
    public func autoClaim(
        stream: String, group: String, consumer: String, minIdle: Duration, start: String = "0-0", count: Int = 100
    ) throws -> (next: String, entries: [RedisStreamEntry]) {
        let idle = minIdle.nanosecondCount / 1_000_000
        switch try query(["XAUTOCLAIM", stream, group, consumer, String(idle), start, "COUNT", String(count)]) {
        case .array(let parts) where parts.count >= 2:
            return (parts[0].text ?? "0-0", Self.streamEntries(parts[1]))
        case .error(let message):
            throw streamError("XAUTOCLAIM", stream, message)
        default:
            return ("0-0", [])
        }
    }

    /// How many entries of `group` were delivered and not acknowledged.
    public func pendingCount(stream: String, group: String) throws -> Int {
        switch try query(["XPENDING", stream, group]) {
        case .array(let summary) where !summary.isEmpty:
            if case .integer(let count) = summary[0] { return Int(count) }
            return 0
        case .error(let message):
            throw streamError("XPENDING", stream, message)
        default:
            return 0
        }
    }

    /// A group's pending entries (delivered, not acknowledged) and lag (entries not delivered
    /// to it yet; nil when Redis cannot tell, e.g. after entries were deleted), from
    /// `XINFO GROUPS` (Redis 7). nil when the stream has no such group.
    public func groupInfo(stream: String, group: String) throws -> (pending: Int64, lag: Int64?)? {
        switch try query(["XINFO", "GROUPS", stream]) {
        case .array(let groups):
            for case .array(let fields) in groups {
                var values: [String: RedisValue] = [:]
                var index = 0
                while index + 1 < fields.count {
                    if let name = fields[index].text { values[name] = fields[index + 1] }
                    index += 2
                }
                guard values["name"]?.text == group else { continue }
                guard case .integer(let pending) = values["pending"] else { return nil }
                if case .integer(let lag) = values["lag"] { return (pending, lag) }
                return (pending, nil)
            }
            return nil
        case .error(let message):
            throw streamError("XINFO GROUPS", stream, message)
        default:
            return nil
        }
    }

    /// The entries of an XRANGE, XREADGROUP or XAUTOCLAIM reply.
    public static func streamEntries(_ value: RedisValue) -> [RedisStreamEntry] {
        guard case .array(let items) = value else { return [] }
        return items.compactMap { item in
            guard case .array(let parts) = item, parts.count == 2, let id = parts[0].text else { return nil }
            guard case .array(let pairs) = parts[1] else { return RedisStreamEntry(id: id, fields: nil) }
            var fields: [RedisStreamEntry.Field] = []
            var index = 0
            while index + 1 < pairs.count {
                if case .string(let value) = pairs[index + 1] {
                    fields.append(.init(name: pairs[index].text ?? "", value: value))
                }
                index += 2
            }
            return RedisStreamEntry(id: id, fields: fields)
        }
    }

    private func streamError(_ command: String, _ stream: String, _ message: String) -> SinkError {
        var hint = ""
        if message.hasPrefix("NOGROUP") { hint = ": create the group first (XGROUP CREATE), or let pgbridge create it" }
        if message.hasPrefix("WRONGTYPE") { hint = ": the key holds another type, not a stream" }
        return SinkError(sink: description, message: "\(command) on \(stream) failed: \(message)\(hint)")
    }
}
