import BridgeCore
import Foundation

/// A pipe's processors and output format, applied to each batch between the source and the
/// sinks. Filtered-out events disappear; the batch keeps its checkpoint and sequence, so the
/// source is still confirmed past them.
public final class EventTransform: Sendable {
    enum Step: Sendable {
        case filter(any EventPredicate)
        case rewrite(ColumnRewriter, tables: [TablePattern]?)
        /// 1-based route index.
        case route(UInt8, tables: [TablePattern])
    }

    let steps: [Step]
    let encoder: FormatEncoder
    let hasRoutes: Bool

    public init(pipe: String, processors: [ProcessorConfig], format: EventFormat, version: String) {
        var steps: [Step] = []
        var routeIndex: UInt8 = 0
        for processor in processors {
            switch processor {
            case .filter(let expression):
                steps.append(.filter(expression))
            case .mask(let mask):
                let actions = Dictionary(
                    mask.columns.map { (Array($0.utf8), ColumnRewriter.Action.mask(mask.method)) },
                    uniquingKeysWith: { a, _ in a })
                steps.append(.rewrite(ColumnRewriter(actions: actions), tables: mask.tables))
            case .drop(let drop):
                let actions = Dictionary(
                    drop.columns.map { (Array($0.utf8), ColumnRewriter.Action.drop) }, uniquingKeysWith: { a, _ in a })
                steps.append(.rewrite(ColumnRewriter(actions: actions), tables: drop.tables))
            case .route(let route):
                routeIndex += 1
                steps.append(.route(routeIndex, tables: route.tables))
            }
        }
        self.steps = steps
        self.hasRoutes = routeIndex > 0
        self.encoder = FormatEncoder(format: format, pipe: pipe, version: version)
    }

    /// Nothing to do: batches pass through untouched (no copy).
    public var isIdentity: Bool { steps.isEmpty && encoder.format == .native }

    public func apply(_ batch: EventBatch) -> EventBatch {
        if isIdentity { return batch }
        var out = EventBatch(checkpoint: batch.checkpoint, sequence: batch.sequence)
        out.refused = batch.refused
        out.bytes.reserveCapacity(batch.bytes.count + batch.bytes.count / 2)
        out.eventEnds.reserveCapacity(batch.eventCount)
        if hasRoutes { out.routes = [] }
        if encoder.format != .native { out.bodies = EventBatch.Bodies() }
        var encoder = encoder
        encoder.nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        // Buffers reused across the batch's events (no allocation per event once warm).
        var spare: [UInt8] = []
        var scratch: [UInt8] = []
        batch.bytes.withUnsafeBufferPointer { original in
            for index in batch.eventEnds.indices {
                process(
                    EventFields.scan(original, event: batch.eventRange(at: index)), original, encoder, into: &out,
                    spare: &spare, scratch: &scratch)
            }
        }
        return out
    }

    private func process(
        _ originalFields: EventFields, _ original: UnsafeBufferPointer<UInt8>, _ encoder: FormatEncoder,
        into out: inout EventBatch, spare: inout [UInt8], scratch: inout [UInt8]
    ) {
        var rewritten: [UInt8]?
        defer {
            // The last rewritten event's buffer serves the next event.
            if let buffer = rewritten, buffer.capacity > spare.capacity { spare = buffer }
        }
        var fields = originalFields
        var route: UInt8 = 0
        for (stepIndex, step) in steps.enumerated() {
            switch step {
            case .filter(let expression):
                let keep =
                    rewritten.map { buffer in buffer.withUnsafeBufferPointer { expression.matches(fields, $0) } }
                    ?? expression.matches(fields, original)
                if !keep { return }
            case .rewrite(let rewriter, let tables):
                var next: [UInt8] = []
                swap(&next, &spare)
                next.removeAll(keepingCapacity: true)
                let applied = withBuffer(rewritten, original) { bytes -> Bool in
                    if let tables,
                        !tables.contains(where: { $0.matches(schema: fields.schema, table: fields.table, in: bytes) })
                    {
                        return false
                    }
                    rewriter.rewrite(fields, bytes, into: &next, scratch: &scratch)
                    return true
                }
                if applied {
                    rewritten = next
                    if stepIndex == steps.count - 1, encoder.format == .native {
                        // Nothing reads the fields any more: only where the event is.
                        fields.event = 0..<next.count
                    } else {
                        fields = next.withUnsafeBufferPointer { EventFields.scan($0, event: 0..<next.count) }
                    }
                } else {
                    spare = next
                }
            case .route(let index, let tables):
                guard route == 0 else { continue }
                let matched = withBuffer(rewritten, original) { bytes in
                    tables.contains { $0.matches(schema: fields.schema, table: fields.table, in: bytes) }
                }
                if matched { route = index }
            }
        }
        withBuffer(rewritten, original) { bytes in
            out.bytes.append(contentsOf: bytes[fields.event])
            if out.bodies != nil {
                encoder.encode(fields, bytes, into: &out.bodies!.bytes)
                out.bodies!.bytes.append(UInt8(ascii: "\n"))
                out.bodies!.ends.append(out.bodies!.bytes.count)
            }
        }
        out.endEvent()
        if hasRoutes { out.routes!.append(route) }
    }

    private func withBuffer<T>(
        _ rewritten: [UInt8]?, _ original: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> T
    ) -> T {
        if let rewritten { return rewritten.withUnsafeBufferPointer(body) }
        return body(original)
    }
}
