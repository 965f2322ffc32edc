import BridgeCore
import FileSink
import Foundation
import Logging
import Testing

/// The file sink's messages of docs/troubleshooting.md, produced by a real file system.
@Suite("File sink messages")
struct FileSinkMessagesTests {
    let logger = Logger(label: "test")

    @Test func aPathThatCannotBeOpenedIsNamedWithTheFix() async throws {
        let path = "/nonexistent-\(UUID().uuidString)/events.jsonl"
        let sink = FileSink(config: FileSinkConfig(path: path), logger: logger)
        do {
            try await sink.open()
            Issue.record("opened \(path)")
        } catch {
            #expect("\(error)".contains("cannot open \(path) for appending: No such file or directory"), "\(error)")
        }
    }

    /// /dev/full answers every write with ENOSPC, as a full disk does.
    @Test func aFullDiskIsReportedAsRetried() async throws {
        let sink = FileSink(config: FileSinkConfig(path: "/dev/full", fsync: false), logger: logger)
        try await sink.open()
        do {
            _ = try await sink.deliver([EventBatch(bytes: Array("{}\n".utf8), eventEnds: [3])])
            Issue.record("a write to /dev/full succeeded")
        } catch {
            #expect(
                "\(error)".contains("the disk of /dev/full is full; pgbridge retries until there is space again"),
                "\(error)")
        }
        await sink.close()
    }
}
