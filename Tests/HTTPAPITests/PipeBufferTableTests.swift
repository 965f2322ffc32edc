import BridgeCore
import TestSupport
import Testing
import WireProtocol

@testable import BridgeRuntime
@testable import Pipeline

/// `pipes.<pipe>` over the wire protocol reads the pipe's event buffer page by page.
@Suite("Wire table of a pipe's buffer")
struct PipeBufferTableTests {
    static func batch(_ ids: ClosedRange<Int>, padding: Int = 0) -> EventBatch {
        .fixture(ids: ids, padding: padding)
    }

    /// Events dropped between two pages: the scan starts over and returns each event once.
    @Test func eventsDroppedDuringTheScanAreNotReturnedTwice() throws {
        let buffer = PipeEventBuffer(capacity: 250)
        buffer.append(stride(from: 1, through: 241, by: 10).map { Self.batch($0...($0 + 9)) })
        var appended = false
        let rows = try PipeBufferTable.readAll(buffer, pipe: "orders", rowLimit: nil, maxBytes: 1 << 30, pageSize: 100)
        {
            guard !appended else { return }
            appended = true
            // The buffer drops whole batches: 1–200 go, where the next page was.
            buffer.append(stride(from: 251, through: 441, by: 10).map { Self.batch($0...($0 + 9)) })
        }
        let ids = rows.compactMap { row -> String? in
            if case .text(let id) = row[0] { return id }
            return nil
        }
        #expect(ids.count == Set(ids).count, "\(ids.count - Set(ids).count) rows came twice")
        #expect(ids == (201...450).map { "0/10:\($0)" })
    }

    @Test func largeBuffersAreBoundedByBytes() throws {
        let buffer = PipeEventBuffer(capacity: 100)
        buffer.append([Self.batch(1...100, padding: 10_000)])
        #expect(throws: WireError.self) {
            _ = try PipeBufferTable.readAll(buffer, pipe: "orders", rowLimit: nil, maxBytes: 1 << 20)
        }
        // A LIMIT the engine pushes down reads only what it needs.
        let limited = try PipeBufferTable.readAll(buffer, pipe: "orders", rowLimit: 5, maxBytes: 1 << 20)
        #expect(limited.count == 5)
    }
}
