import NIOCore

/// Rows of a result, fetched in parts: a running SELECT, or rows already computed.
final class RowSource {
    private let execution: SelectExecution?
    private var rows: [[SQLValue]]
    private var index = 0
    private(set) var sent = 0

    init(_ execution: SelectExecution) {
        self.execution = execution
        rows = []
    }

    init(rows: [[SQLValue]]) {
        execution = nil
        self.rows = rows
    }

    /// Up to `count` rows (nil = all that remain).
    func fetch(_ count: Int?) async throws -> [[SQLValue]] {
        if let execution {
            let result = try await execution.fetch(count)
            sent += result.count
            return result
        }
        let end = count.map { min(rows.count, index + $0) } ?? rows.count
        let result = Array(rows[index..<end])
        index = end
        sent += result.count
        return result
    }

    func close() async { await execution?.close() }
}

extension ByteBuffer {
    mutating func writeRows(_ rows: [[SQLValue]]) {
        for row in rows { writeDataRow(row.map(\.text)) }
    }
}
