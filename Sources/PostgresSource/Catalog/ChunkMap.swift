import BridgeCore

/// What pgbridge knows about TimescaleDB's chunks, so that a chunk's rows are reported as its
/// hypertable and its retention as `chunk_dropped` even when the chunk is already gone from the
/// live catalog (pgbridge lagged behind, or was not running, when it was dropped).
///
/// Three sources feed it: the live catalog when streaming starts, the `_timescaledb_catalog.chunk`
/// rows in the stream itself (TimescaleDB inserts a chunk's catalog row, with its hypertable id and
/// name, in the transaction that creates the chunk, before any row of it), and the copy kept in
/// the state directory across restarts (`ChunkMapStore`). A dropped chunk is remembered until the
/// transaction that dropped it is confirmed, so a replay after a crash reports it again.
struct ChunkMap: Sendable, Equatable {
    struct Hypertable: Sendable, Equatable, Codable {
        let id: Int64
        let schema: String
        let name: String
        var display: String { "\(schema).\(name)" }
    }

    struct Chunk: Sendable, Equatable, Codable {
        let id: Int64
        let hypertableID: Int64
        var schema: String
        var name: String
        /// Range of the first (time) dimension; nil when open-ended or unknown.
        var rangeStart: String?
        var rangeEnd: String?
        /// End of the transaction that dropped the chunk, until that position is confirmed.
        var droppedAt: UInt64?

        var display: String { "\(schema).\(name)" }
    }

    /// `schema.name` of the hypertables whose chunks the pipe reports.
    let capturedHypertableNames: Set<String>
    private(set) var hypertables: [Int64: Hypertable] = [:]
    /// Catalog ids by `schema.name` (kept with `hypertables`, asked on every Relation message).
    private(set) var hypertableIDsByName: [String: Int64] = [:]
    private(set) var chunks: [Int64: Chunk] = [:]
    private var chunkIDByName: [String: Int64] = [:]

    init(capturedHypertableNames: Set<String>) {
        self.capturedHypertableNames = capturedHypertableNames
    }

    var chunkCount: Int { chunks.count }

    // MARK: - Learning

    /// Hypertables as the catalog lists them (an id's name does not change while it exists).
    mutating func learn(hypertables list: [Hypertable]) {
        for hypertable in list {
            hypertables[hypertable.id] = hypertable
            hypertableIDsByName[hypertable.display] = hypertable.id
        }
    }

    /// A chunk from the catalog or the stream. An update of a known chunk keeps what the new row
    /// does not say (its range) and a pending drop.
    mutating func learn(_ chunk: Chunk) {
        var merged = chunk
        if let known = chunks[chunk.id] {
            if known.display != chunk.display, chunkIDByName[known.display] == chunk.id {
                chunkIDByName[known.display] = nil
            }
            merged.rangeStart = chunk.rangeStart ?? known.rangeStart
            merged.rangeEnd = chunk.rangeEnd ?? known.rangeEnd
            merged.droppedAt = chunk.droppedAt ?? known.droppedAt
        }
        chunks[chunk.id] = merged
        chunkIDByName[merged.display] = chunk.id
    }

    mutating func setRange(chunkID: Int64, start: String?, end: String?) {
        guard var chunk = chunks[chunkID] else { return }
        chunk.rangeStart = start
        chunk.rangeEnd = end
        chunks[chunkID] = chunk
    }

    // MARK: - Questions

    func chunk(id: Int64) -> Chunk? { chunks[id] }

    func chunk(schema: String, name: String) -> Chunk? {
        chunkIDByName["\(schema).\(name)"].flatMap { chunks[$0] }
    }

    func hypertable(id: Int64) -> Hypertable? { hypertables[id] }

    /// Whether the chunk's hypertable is captured; nil when its hypertable is not known.
    func isCaptured(_ chunk: Chunk) -> Bool? {
        hypertables[chunk.hypertableID].map { capturedHypertableNames.contains($0.display) }
    }

    /// What a `chunk_dropped` event reports, for chunks of captured hypertables.
    func record(chunkID: Int64) -> ChunkRecord? {
        guard let chunk = chunks[chunkID], let hypertable = hypertables[chunk.hypertableID],
            capturedHypertableNames.contains(hypertable.display)
        else { return nil }
        return ChunkRecord(hypertable: hypertable, chunk: chunk)
    }

    // MARK: - Retention

    /// The chunk's catalog row was deleted by the transaction ending at `lsn`.
    mutating func markDropped(chunkID: Int64, at lsn: LSN) {
        guard var chunk = chunks[chunkID] else { return }
        chunk.droppedAt = max(chunk.droppedAt ?? 0, lsn.value)
        chunks[chunkID] = chunk
    }

    /// Forgets chunks whose drop is confirmed; returns whether anything was removed.
    @discardableResult
    mutating func forgetDropped(confirmedThrough confirmed: LSN) -> Bool {
        let gone = chunks.values.filter { ($0.droppedAt ?? .max) <= confirmed.value }
        for chunk in gone {
            chunks[chunk.id] = nil
            if chunkIDByName[chunk.display] == chunk.id { chunkIDByName[chunk.display] = nil }
        }
        return !gone.isEmpty
    }

    // MARK: - Names

    static let chunkSchema = "_timescaledb_internal"

    /// TimescaleDB names chunks `<associated_table_prefix>_<chunk id>_chunk` with the default
    /// prefix `_hyper_<hypertable id>`: `_hyper_12_345_chunk` → (12, 345).
    static func ids(fromChunkName name: String) -> (hypertable: Int64, chunk: Int64)? {
        guard name.hasPrefix("_hyper_"), name.hasSuffix("_chunk") else { return nil }
        let parts = name.split(separator: "_")  // ["hyper", "12", "345", "chunk"]
        guard parts.count == 4, parts[0] == "hyper", parts[3] == "chunk",
            parts[1].allSatisfy(\.isASCIIDigit), parts[2].allSatisfy(\.isASCIIDigit),
            let hypertable = Int64(parts[1]), let chunk = Int64(parts[2])
        else { return nil }
        return (hypertable, chunk)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
