import BridgeCore
import TestSupport
import Testing

@testable import Pipeline

@Suite("Pipe event buffer")
struct PipeEventBufferTests {
    func batch(_ ids: ClosedRange<Int>, table: String = "items", op: String = "insert") -> EventBatch {
        .fixture(ids: ids, table: table, op: op)
    }

    @Test func pagesByCursorAndFilters() throws {
        let buffer = PipeEventBuffer(capacity: 100)
        buffer.append([batch(1...3), batch(4...5, table: "other", op: "delete")])
        let first = try buffer.read(from: buffer.startPosition, limit: 2)
        #expect(first.events.map(\.id) == ["0/10:1", "0/10:2"])
        #expect(String(decoding: first.events[0].body, as: UTF8.self).hasSuffix("}"))
        let rest = try buffer.read(from: try buffer.position(after: "0/10:2"), limit: 10)
        #expect(rest.events.map(\.id) == ["0/10:3", "0/10:4", "0/10:5"])
        let deletes = try buffer.read(from: buffer.startPosition, limit: 10, filter: .init(op: "delete"))
        #expect(deletes.events.map(\.id) == ["0/10:4", "0/10:5"])
        let inserts = try buffer.read(from: nil, limit: 10, filter: .init(op: "insert"))
        #expect(inserts.events.map(\.id) == ["0/10:1", "0/10:2", "0/10:3"])
        #expect(inserts.lastScannedID == "0/10:5", "the cursor covers the events that did not match too")
        let qualified = try buffer.read(from: buffer.startPosition, limit: 10, filter: .init(table: "public.items"))
        #expect(qualified.events.count == 3)
        #expect(try buffer.read(from: buffer.endPosition, limit: 10).events.isEmpty)
    }

    @Test func oldEventsAreGone() throws {
        let buffer = PipeEventBuffer(capacity: 10)
        for start in stride(from: 1, through: 50, by: 5) { buffer.append([batch(start...(start + 4))]) }
        #expect(throws: PipeEventBuffer.ReadError.self) { try buffer.position(after: "0/10:3") }
        #expect(throws: PipeEventBuffer.ReadError.self) { try buffer.read(from: 1, limit: 10) }
        let page = try buffer.read(from: buffer.startPosition, limit: 100)
        #expect(page.events.count <= 14 && page.events.count >= 10)
        #expect(page.events.last?.id == "0/10:50")
    }

    /// Events of 1 MiB rows: the buffer holds at most its byte capacity (plus the newest batch),
    /// whatever its event capacity, and readers behind it are told their cursor is gone.
    @Test func largeEventsAreBoundedByBytes() throws {
        let buffer = PipeEventBuffer(capacity: 10_000, byteCapacity: 8 << 20)
        let pad = String(repeating: "x", count: 1 << 20)
        for id in 1...40 {
            var batch = EventBatch()
            batch.bytes += Array(
                #"{"id":"0/10:\#(id)","op":"insert","source":{"schema":"public","table":"t"},"after":{"pad":"\#(pad)"}}"#
                    .utf8)
            batch.endEvent()
            buffer.append([batch])
            #expect(
                buffer.storedBytes <= (8 << 20) + (1 << 20) + 1024, "\(buffer.storedBytes) bytes after \(id) events")
        }
        let page = try buffer.read(from: buffer.startPosition, limit: 100)
        // Seven events of a little over 1 MiB fit in 8 MiB.
        #expect(page.events.count == 7 && page.events.last?.id == "0/10:40", "\(page.events.map(\.id))")
        #expect(throws: PipeEventBuffer.ReadError.self) { try buffer.position(after: "0/10:1") }
    }

    @Test func subscribersAreWoken() async throws {
        let buffer = PipeEventBuffer(capacity: 10)
        let changes = buffer.changes()
        buffer.append([batch(1...1)])
        var iterator = changes.makeAsyncIterator()
        #expect(await iterator.next() != nil)
        buffer.close()
        #expect(await iterator.next() == nil)
    }
}
