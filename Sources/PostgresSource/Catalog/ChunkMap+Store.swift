import BridgeCore
import Foundation
import PostgresClient

/// Keeps a pipe's `ChunkMap` in the state directory, so that a chunk that existed before a
/// restart and was dropped while pgbridge was away is still reported as `chunk_dropped` of its
/// hypertable (the live catalog no longer has it; the stream only has the delete).
struct ChunkMapStore {
    let path: String

    private struct Contents: Codable {
        var version = 1
        var hypertables: [ChunkMap.Hypertable]
        var chunks: [ChunkMap.Chunk]
    }

    init(directory: String, pipe: String) {
        path = (directory as NSString).appendingPathComponent("\(pipe).chunks.json")
    }

    /// The stored chunks and hypertables, learned into `map`; a missing file is an empty map, an
    /// unreadable one is an error naming the file.
    func load(into map: inout ChunkMap) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let contents: Contents
        do {
            contents = try JSONDecoder().decode(Contents.self, from: data)
        } catch {
            throw PostgresError(
                .prerequisite,
                "cannot read the TimescaleDB chunk map \(path): \(error). Delete the file and restart pgbridge "
                    + "(chunks dropped while pgbridge was stopped may then not be reported)", retriable: false)
        }
        map.learn(hypertables: contents.hypertables)
        for chunk in contents.chunks { map.learn(chunk) }
    }

    func save(_ map: ChunkMap) throws {
        let contents = Contents(
            hypertables: map.hypertables.values.sorted { $0.id < $1.id },
            chunks: map.chunks.values.sorted { $0.id < $1.id })
        try DurableFile.replace(path, with: JSONEncoder().encode(contents))
    }
}
