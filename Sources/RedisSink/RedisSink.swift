import BridgeCore
import Logging
import RedisClient

/// Forwards events to Redis: a stream entry (XADD), a PUBLISH, or a hash mirroring each row.
///
/// Commands are pipelined (`pipeline` at a time before replies are read). An error reply
/// rejects that event (dead-lettered after retries); a lost connection fails the delivery,
/// which the pipe retries after reconnecting, so nothing is lost (at-least-once).
public final class RedisSink: EventSink {
    public let config: RedisSinkConfig
    let client: RedisClient
    let logger: Logger
    /// Key templates of the pipe's routes (index = route - 1; nil = the sink's own key).
    let routeKeys: [NameTemplate?]

    public init(config: RedisSinkConfig, client: RedisClient, routeKeys: [NameTemplate?] = [], logger: Logger) {
        self.config = config
        self.client = client
        self.routeKeys = routeKeys
        self.logger = logger
    }

    public var description: String { "redis:\(client.description) \(config.mode.rawValue) \(config.key)" }

    public func open() async throws { try await client.open() }
    public func close() async { await client.close() }

    public func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
        let config = config
        let routeKeys = routeKeys
        return try await client.run { connection, arena in
            var writer = RedisCommandWriter(config: config, connection: connection)
            for (batchIndex, batch) in batches.enumerated() {
                try batch.forEachEvent { bytes, eventIndex, fields, body in
                    let route = Int(batch.route(at: eventIndex))
                    writer.key = route > 0 && route <= routeKeys.count ? routeKeys[route - 1] ?? config.key : config.key
                    try writer.write(fields, bytes, body: body, event: (batchIndex, eventIndex), arena: &arena)
                }
            }
            try writer.flush()
            return DeliveryResult(rejected: writer.rejected)
        }
    }
}

/// Turns events into pipelined commands on one connection and collects error replies.
struct RedisCommandWriter {
    let config: RedisSinkConfig
    let connection: RedisConnection
    /// The key template of the current event.
    var key: NameTemplate
    /// The event each unanswered command belongs to.
    private var pending: [(batch: Int32, event: Int32)] = []
    private(set) var rejected: [Rejection] = []
    private var scratch: [UInt8] = []
    private var nullColumns: [Range<Int>] = []

    init(config: RedisSinkConfig, connection: RedisConnection) {
        self.config = config
        self.connection = connection
        self.key = config.key
        pending.reserveCapacity(config.pipeline)
    }

    mutating func write(
        _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, body: UnsafeBufferPointer<UInt8>,
        event: (Int, Int), arena: inout CommandArena
    ) throws {
        switch config.mode {
        case .stream:
            beginKeyed("XADD", fields, bytes, arena: &arena)
            if let maxLength = config.maxLength {
                arena.add("MAXLEN" as StaticString)
                arena.add("~" as StaticString)
                arena.write { JSONBytes.appendInt(Int64(maxLength), into: &$0) }
                arena.close()
            }
            arena.add("*" as StaticString)
            arena.add("id" as StaticString)
            arena.add(bytes[fields.id ?? 0..<0])
            arena.add("op" as StaticString)
            arena.add(bytes[fields.op ?? 0..<0])
            arena.add("event" as StaticString)
            arena.add(body)
            try send(&arena, event: event)
        case .pubsub:
            beginKeyed("PUBLISH", fields, bytes, arena: &arena)
            arena.add(body)
            try send(&arena, event: event)
        case .hash:
            try writeHash(fields, bytes, event: event, arena: &arena)
        }
    }

    /// insert/update/read: HSET the row's non-null columns, HDEL its null ones (and DEL the old
    /// hash when an update changed the key); delete: DEL; truncate: every hash of the table.
    private mutating func writeHash(
        _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, event: (Int, Int), arena: inout CommandArena
    ) throws {
        let scanner = JSONScanner(bytes)
        switch fields.operation(in: bytes) {
        case .insert, .update, .read:
            guard let after = fields.after, !scanner.isNull(after) else { return }
            if let before = fields.before, !scanner.isNull(before) {
                scratch.removeAll(keepingCapacity: true)
                key.render(fields, bytes, keyValuesFrom: before, into: &scratch)
                let oldKey = scratch
                scratch.removeAll(keepingCapacity: true)
                key.render(fields, bytes, into: &scratch)
                if oldKey != scratch {
                    arena.begin()
                    arena.add("DEL" as StaticString)
                    arena.add(oldKey)
                    try send(&arena, event: event)
                }
            }
            beginKeyed("HSET", fields, bytes, arena: &arena)
            nullColumns.removeAll(keepingCapacity: true)
            scanner.forEachMember(of: after) { name, value in
                if scanner.isNull(value) {
                    nullColumns.append(name)
                } else {
                    arena.write { scanner.appendUnescaped(name, into: &$0) }
                    arena.close()
                    arena.write { scanner.appendText(value, into: &$0) }
                    arena.close()
                }
                return true
            }
            if arena.argumentCount > 2 { try send(&arena, event: event) }
            if !nullColumns.isEmpty {
                beginKeyed("HDEL", fields, bytes, arena: &arena)
                for name in nullColumns {
                    arena.write { scanner.appendUnescaped(name, into: &$0) }
                    arena.close()
                }
                try send(&arena, event: event)
            }
        case .delete:
            beginKeyed("DEL", fields, bytes, arena: &arena)
            try send(&arena, event: event)
        case .truncate:
            try flush()
            try deleteMatching(key.globPattern(fields, bytes), event: event, arena: &arena)
        case .message, .chunkDropped, nil:
            return  // not a row: nothing to mirror
        }
    }

    /// SCAN + UNLINK every key matching `pattern` (TRUNCATE in hash mode).
    private mutating func deleteMatching(_ pattern: [UInt8], event: (Int, Int), arena: inout CommandArena) throws {
        var cursor = "0"
        repeat {
            arena.begin()
            arena.add("SCAN" as StaticString)
            arena.add(cursor)
            arena.add("MATCH" as StaticString)
            arena.add(pattern)
            arena.add("COUNT" as StaticString)
            arena.add("1000" as StaticString)
            try connection.append(&arena)
            let (next, keys) = try connection.readScanReply()
            cursor = next
            if !keys.isEmpty {
                arena.begin()
                arena.add("UNLINK" as StaticString)
                for key in keys { arena.add(key) }
                try send(&arena, event: event)
                try flush()
            }
        } while cursor != "0"
    }

    /// Starts the command `name` with the event's key as its first argument.
    private func beginKeyed(
        _ name: StaticString, _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, arena: inout CommandArena
    ) {
        arena.begin()
        arena.add(name)
        arena.write { key.render(fields, bytes, into: &$0) }
        arena.close()
    }

    private mutating func send(_ arena: inout CommandArena, event: (Int, Int)) throws {
        try connection.append(&arena)
        pending.append((Int32(event.0), Int32(event.1)))
        if pending.count >= config.pipeline { try flush() }
    }

    /// Reads the replies of every queued command.
    mutating func flush() throws {
        for owner in pending {
            if case .error(let message) = try connection.readReply() {
                let batch = Int(owner.batch)
                let event = Int(owner.event)
                if rejected.last?.batch != batch || rejected.last?.event != event {
                    rejected.append(
                        Rejection(
                            batch: batch, event: event, reason: "Redis replied: \(message)",
                            isPermanent: !Self.isTransient(message)))
                }
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Error replies that may go away by themselves (memory, loading, failover).
    static func isTransient(_ message: String) -> Bool {
        for prefix in ["OOM", "BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "NOREPLICAS"]
        where message.hasPrefix(prefix) {
            return true
        }
        return false
    }
}
