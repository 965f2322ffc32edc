import BridgeCore
import Foundation
import Testing

@Suite("Checkpoint store and batch queue")
struct StateTests {
    @Test func checkpointRoundTripAndNeverBackwards() throws {
        let directory = NSTemporaryDirectory() + "pgbridge-state-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try CheckpointStore(directory: directory, pipe: "p")
        #expect(store.load() == nil)
        try store.save(.init(lsn: LSN("0/100")!, systemID: "42", slot: "s"))
        try store.save(.init(lsn: LSN("0/80")!, systemID: "42", slot: "s"))
        let reopened = try CheckpointStore(directory: directory, pipe: "p")
        #expect(reopened.load() == .init(lsn: LSN("0/100")!, systemID: "42", slot: "s"))
        let text = try String(contentsOfFile: reopened.path, encoding: .utf8)
        #expect(text == "lsn 0/100\nsystem 42\nslot s\ntimeline \n")
    }

    @Test func queueHandsOverInOrderAndBlocksWhenFull() async throws {
        let queue = BatchQueue(capacity: 2)
        #expect(queue.put(EventBatch(sequence: 1), timeout: .milliseconds(10)))
        #expect(queue.put(EventBatch(sequence: 2), timeout: .milliseconds(10)))
        #expect(!queue.hasRoom)
        #expect(!queue.put(EventBatch(sequence: 3), timeout: .milliseconds(20)))
        #expect(try await queue.next()?.sequence == 1)
        #expect(queue.hasRoom)
        let producer = Thread {
            for sequence in 3...50 {
                while !queue.put(EventBatch(sequence: UInt64(sequence)), timeout: .milliseconds(50)) {}
            }
            queue.finish()
        }
        producer.start()
        var received: [UInt64] = []
        while let batch = try await queue.next() { received.append(batch.sequence) }
        #expect(received == Array(2...50))
    }

    @Test func queueDeliversFailure() async throws {
        struct Boom: Error {}
        let queue = BatchQueue(capacity: 1)
        _ = queue.put(EventBatch(sequence: 1), timeout: .zero)
        queue.finish(error: Boom())
        #expect(try await queue.next()?.sequence == 1)
        await #expect(throws: Boom.self) { _ = try await queue.next() }
    }

    @Test func batchEvents() {
        var batch = EventBatch()
        batch.bytes.append(contentsOf: Array("{\"a\":1}".utf8))
        batch.endEvent()
        batch.bytes.append(contentsOf: Array("{}".utf8))
        batch.endEvent()
        #expect(batch.eventCount == 2)
        #expect(String(decoding: batch.event(at: 0), as: UTF8.self) == "{\"a\":1}")
        #expect(String(decoding: batch.event(at: 1), as: UTF8.self) == "{}")
        #expect(String(decoding: batch.bytes, as: UTF8.self) == "{\"a\":1}\n{}\n")
    }
}
