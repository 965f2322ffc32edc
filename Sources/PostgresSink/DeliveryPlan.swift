import BridgeCore

/// One delivery read into what the apply needs: per target table, the events to stage (as
/// references into the batches' bytes: nothing is copied here) and what the statements must
/// handle (deletes, key changes, unchanged TOAST columns, truncates, chunk drops). Events already
/// applied (at or before the recorded position) are left out; so are events no table can take,
/// which become rejections.
struct DeliveryPlan {
    /// One event to stage, by seq (its index in `events`).
    struct Staged {
        var seq: Int
        var batch: Int
        var event: Int
        var op: ChangeOperation
        /// Ranges in the batch's bytes.
        var key: Range<Int>?
        var before: Range<Int>?
        var after: Range<Int>?
        var id: Range<Int>?
        var commitLSN: Range<Int>?
        var commitTime: Range<Int>?
        /// 1-based index into the table's `unchangedSets`; 0 = every column sent.
        var uset = 0
        /// `{"k":v}` of the row's previous key, when an update changed it.
        var oldKey: [UInt8]?
        /// The members of `after`, read while the event was scanned: indices into the table's
        /// `memberValues` and `memberColumns` (nil: not recorded, read from the JSON again).
        var members: Range<Int>?
    }

    var tables: [TableWork] = []
    var tableIndex: [[UInt8]: Int] = [:]
    /// seq → the event it came from.
    var events: [(batch: Int, event: Int)] = []
    /// The newest position among the events of this delivery, per stream.
    var newest: [String: SinkPosition] = [:]
    /// Events refused before any SQL (no table, no key).
    var rejected: [Rejection] = []
    /// Events left out because an earlier delivery applied them.
    var skipped = 0
    /// Events left out because they came twice in this delivery (the same stream position).
    var duplicates = 0
    /// Logical messages, which have no table (left out, counted for the log).
    var messages = 0
    /// Pending (once refused) events that came again and are in this delivery.
    var replayedPending: Set<String> = []
    /// The members of the event being read's `after` (kept to reuse its storage).
    private var afterMembers: [(key: Range<Int>, value: Range<Int>)] = []
    /// The source table of the previous event and its target (the common case: the next event
    /// is of the same table), when the template names one target per source table.
    private var lastTable: (schema: [UInt8], table: [UInt8], index: Int)?

    let mode: PostgresSinkConfig.Mode
    let template: NameTemplate
    /// The stream of events whose ids name none (a replication slot's): the source's stream id.
    let defaultStream: String
    /// The last stream named by an id, and its name (consecutive events mostly share one).
    private var lastStream: (bytes: [UInt8], name: String)?

    /// The template names one target per source table (no `{op}`, `{capture}`, `{channel}`).
    let perTableTemplate: Bool
    /// The number of events being added: the first table's arrays are sized for them at once
    /// (most deliveries have one table), instead of growing by copies.
    private var capacityHint = 0

    init(mode: PostgresSinkConfig.Mode, template: NameTemplate, defaultStream: String = "") {
        self.mode = mode
        self.template = template
        self.defaultStream = defaultStream
        perTableTemplate = !["{op}", "{capture}", "{channel}"].contains { template.description.contains($0) }
    }

    /// One table, only inserts with distinct keys and nothing else (apply mode): the part of a
    /// delivery a direct COPY can take while the next part is planned.
    var isDirectCopyCandidate: Bool {
        guard mode == .apply, tables.count == 1, let work = tables.first else { return false }
        return work.truncate == nil && work.droppedChunks.isEmpty && !work.staged.isEmpty && work.isInsertsOnly
    }

    /// Refusals by seq as the rejections of the delivery's events.
    func rejections(_ refused: [(seq: Int, reason: String)]) -> [Rejection] {
        refused.map { seq, reason in
            let (batch, event) = events[seq]
            return Rejection(batch: batch, event: event, reason: reason, isPermanent: true)
        }
    }

    static let unchangedToast = Array("unchanged_toast".utf8)
    static let truncateMember = Array("truncate".utf8)
    static let chunkMember = Array("chunk".utf8)

    /// Reads every event of `batches`; `applied` says which were applied already.
    mutating func add(_ batches: [EventBatch], applied: AppliedStreams) {
        add(batches, range: batches.indices, applied: applied)
    }

    /// Reads the events of `batches[range]` (batch indices stay those of `batches`).
    mutating func add(_ batches: [EventBatch], range: Range<Int>, applied: AppliedStreams) {
        capacityHint = range.reduce(0) { $0 + batches[$1].eventCount }
        for b in range {
            let batch = batches[b]
            batch.bytes.withUnsafeBufferPointer { bytes in
                for e in batch.eventEnds.indices {
                    add(bytes, range: batch.eventRange(at: e), batch: b, event: e, applied: applied)
                }
            }
        }
        flushCurrentStream()
    }

    /// The stream of the events being read (consecutive events mostly share one): what it
    /// applied before and its newest position so far, kept out of the dictionaries per event.
    private var current: (name: String, applied: AppliedPositions, newest: SinkPosition?)?

    private mutating func switchStream(to name: String, _ streams: AppliedStreams) {
        if current?.name == name { return }
        flushCurrentStream()
        current = (name, streams[name], newest[name])
    }

    private mutating func flushCurrentStream() {
        if let current, let position = current.newest { newest[current.name] = position }
    }

    private mutating func add(
        _ bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>, batch: Int, event: Int, applied streams: AppliedStreams
    ) {
        var members: [(key: Range<Int>, value: Range<Int>)] = []
        swap(&members, &afterMembers)
        members.removeAll(keepingCapacity: true)
        defer { swap(&members, &afterMembers) }
        let fields = EventFields.scan(bytes, event: range) { key, value in members.append((key, value)) }
        let id = fields.id.map { UnsafeBufferPointer(rebasing: bytes[$0]) }
        let parsed = id.flatMap { SinkPosition.parse(id: $0) }
        let position = parsed?.position
        var stream = defaultStream
        if let id, let range = parsed?.stream { stream = streamName(UnsafeBufferPointer(rebasing: id[range])) }
        switchStream(to: stream, streams)
        let applied = current!.applied
        if let position, let id, applied.alreadyApplied(position, id: id) {
            skipped += 1
            return
        }
        if let position, let id, let applied = applied.position, position <= applied {
            replayedPending.insert(String(decoding: id, as: UTF8.self))
        }
        // Rows of a snapshot carry the snapshot's LSN, not a place in the stream (`pgbridge
        // snapshot` reads at the current WAL position, ahead of what the stream applied): they
        // never move the position. Applying them again is harmless (upserts).
        let isSnapshot = fields.capture.map { $0.count == 8 && bytes[$0.lowerBound] == UInt8(ascii: "s") } ?? false
        if let position, !isSnapshot, let newest = current!.newest, position <= newest {
            // Read twice within one delivery (a Kafka consumer re-reading from its last commit
            // after a rebalance or a reconnect, while the first reading is still on its way).
            duplicates += 1
            return
        }
        if let position, !isSnapshot, current!.newest.map({ position > $0 }) ?? true { current!.newest = position }
        func reject(_ reason: String) {
            rejected.append(Rejection(batch: batch, event: event, reason: reason, isPermanent: true))
        }
        guard let operation = fields.operation(in: bytes) else {
            return reject("the event has no known op: pgbridge's postgres sink applies native change events")
        }
        if operation == .message {
            messages += 1
            return
        }
        guard let schemaRange = fields.schema, let tableRange = fields.table else {
            return reject("the event names no table: \(operation) events without source.table cannot be applied")
        }
        let scanner = JSONScanner(bytes)
        // Consecutive events mostly come from one table: its target is rendered once.
        let table: Int
        if perTableTemplate, let last = lastTable,
            last.schema.equals(UnsafeBufferPointer(rebasing: bytes[schemaRange])),
            last.table.equals(UnsafeBufferPointer(rebasing: bytes[tableRange]))
        {
            table = last.index
        } else {
            let tableName = template.render(fields, bytes)
            guard !tableName.isEmpty else {
                return reject("the table template names no table for this event: set the sink's table")
            }
            table = tableWork(for: tableName)
            lastTable = (Array(bytes[schemaRange]), Array(bytes[tableRange]), table)
        }
        if tables[table].sourceTable.isEmpty, let schema = fields.schema, let name = fields.table {
            tables[table].sourceSchema = Self.text(schema, scanner)
            tables[table].sourceTable = Self.text(name, scanner)
        }
        let seq = events.count
        var staged = Staged(
            seq: seq, batch: batch, event: event, op: operation,
            key: fields.key.flatMap { scanner.isNull($0) ? nil : $0 },
            before: fields.before.flatMap { scanner.isNull($0) ? nil : $0 },
            after: fields.after.flatMap { scanner.isNull($0) ? nil : $0 }, id: fields.id,
            commitLSN: fields.commitLSN, commitTime: fields.commitTime)
        switch mode {
        case .append:
            if staged.after != nil {
                staged.members = tables[table].record(members, bytes)
            } else if let row = staged.before ?? staged.key {
                tables[table].collectColumns(row, scanner: scanner)
            }
            tables[table].hasUpserts = true
        case .apply:
            switch operation {
            case .truncate:
                let options = scanner.member(Self.truncateMember, of: range)
                func flag(_ name: String) -> Bool {
                    guard let options, let value = scanner.member(Array(name.utf8), of: options) else { return false }
                    return bytes[value.lowerBound] == UInt8(ascii: "t")
                }
                tables[table].truncate = (seq, flag("cascade"), flag("restart_identity"))
                events.append((batch, event))
                return
            case .chunkDropped:
                guard let chunk = scanner.member(Self.chunkMember, of: range) else {
                    return reject("a chunk_dropped event without its chunk range")
                }
                func text(_ name: String) -> String {
                    guard let value = scanner.member(Array(name.utf8), of: chunk) else { return "" }
                    var out: [UInt8] = []
                    scanner.appendText(value, into: &out)
                    return String(decoding: out, as: UTF8.self)
                }
                tables[table].droppedChunks.append((seq, text("range_start"), text("range_end")))
                events.append((batch, event))
                return
            default:
                guard let key = staged.key else {
                    return reject(
                        "\(tables[table].name) has no key in the event: the source table needs a primary key or a replica identity index to be applied by key (or use mode: append)"
                    )
                }
                if tables[table].keyColumns.isEmpty {
                    scanner.forEachMember(of: key) { name, _ in
                        tables[table].keyColumns.append(Self.name(name, scanner))
                        return true
                    }
                }
                tables[table].noteKey(UnsafeBufferPointer(rebasing: bytes[key]))
                if operation == .delete {
                    tables[table].hasDeletes = true
                } else {
                    tables[table].hasUpserts = true
                    if staged.after != nil { staged.members = tables[table].record(members, bytes) }
                }
                if operation == .update {
                    staged.uset = unchangedSet(range, table: table, scanner: scanner)
                    if let before = staged.before,
                        let old = Self.keyOf(before, columns: tables[table].keyColumns, scanner: scanner),
                        !old.equals(UnsafeBufferPointer(rebasing: bytes[key]))
                    {
                        staged.oldKey = old
                        tables[table].hasDeletes = true
                        tables[table].repeatsKeys = true
                    }
                }
            }
        }
        events.append((batch, event))
        tables[table].staged.append(staged)
    }

    /// The stream an id names (`kafka:<topic>:<partition>`).
    private mutating func streamName(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if let last = lastStream, last.bytes.equals(bytes) { return last.name }
        let name = String(decoding: bytes, as: UTF8.self)
        lastStream = (Array(bytes), name)
        return name
    }

    /// The stream of an event id (the default stream for replication ids).
    static func stream(ofID id: String, default defaultStream: String) -> String {
        let bytes = Array(id.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            guard let range = SinkPosition.parse(id: buffer)?.stream else { return defaultStream }
            return String(decoding: buffer[range], as: UTF8.self)
        }
    }

    /// The event's set of unchanged TOAST columns (0 = none).
    private mutating func unchangedSet(_ event: Range<Int>, table: Int, scanner: JSONScanner) -> Int {
        guard let unchanged = scanner.member(Self.unchangedToast, of: event), !scanner.isNull(unchanged) else {
            return 0
        }
        let bytes = scanner.bytes
        var names: [String] = []
        var i = unchanged.lowerBound + 1
        while i < unchanged.upperBound {
            i = scanner.skipWhitespace(i)
            guard i < unchanged.upperBound, bytes[i] == 0x22 else { break }
            let end = scanner.stringEnd(i)
            names.append(Self.name((i + 1)..<(end - 1), scanner))
            i = scanner.skipWhitespace(end)
            if i < unchanged.upperBound, bytes[i] == 0x2C { i += 1 }
        }
        guard !names.isEmpty else { return 0 }
        if let index = tables[table].unchangedSets.firstIndex(of: names) { return index + 1 }
        tables[table].unchangedSets.append(names)
        return tables[table].unchangedSets.count
    }

    private mutating func tableWork(for name: [UInt8]) -> Int {
        if let index = tableIndex[name] { return index }
        let (schema, table) = TargetTable.split(String(decoding: name, as: UTF8.self))
        var work = TableWork(schema: schema, name: table)
        if tables.isEmpty { work.reserve(capacityHint) }
        tables.append(work)
        tableIndex[name] = tables.count - 1
        return tables.count - 1
    }

    static func text(_ contents: Range<Int>, _ scanner: JSONScanner) -> String { name(contents, scanner) }

    static func name(_ key: Range<Int>, _ scanner: JSONScanner) -> String {
        var out: [UInt8] = []
        scanner.appendUnescaped(key, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `{"k1":v1,"k2":v2}` from a row object: the old key of an update that changed it.
    static func keyOf(_ row: Range<Int>, columns: [String], scanner: JSONScanner) -> [UInt8]? {
        var out: [UInt8] = [0x7B]
        for (index, column) in columns.enumerated() {
            guard let value = scanner.member(Array(column.utf8), of: row) else { return nil }
            if index > 0 { out.append(0x2C) }
            JSONBytes.appendString(column, into: &out)
            out.append(0x3A)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: scanner.bytes[value]))
        }
        out.append(0x7D)
        return out
    }
}
