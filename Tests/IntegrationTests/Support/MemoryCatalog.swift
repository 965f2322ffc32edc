import Synchronization
import WireProtocol

/// An in-memory table served over the wire protocol: tests the protocol and the SQL subset
/// with a real postgres_fdw, apart from Kafka, Redis and RabbitMQ.
final class MemoryTable: ForeignTable {
    let name: TableName
    let columns: [ForeignColumn]
    let rows: Mutex<[[SQLValue]]>
    let scans = Mutex<[ScanRequest]>([])

    init(schema: String, name: String, columns: [ForeignColumn], rows: [[SQLValue]]) {
        self.name = TableName(schema: schema, name: name)
        self.columns = columns
        self.rows = Mutex(rows)
    }

    func estimatedRows() async -> Int { rows.withLock { $0.count } }

    func scan(_ request: ScanRequest) async throws -> any ForeignScan {
        scans.withLock { $0.append(request) }
        return BatchedScan(rows.withLock { $0 }, batch: 7)
    }

    func insert(_ newRows: [[String: SQLValue]]) async throws -> [[String: SQLValue]] {
        rows.withLock { rows in
            for row in newRows {
                var values = columns.map { row[$0.name] ?? .null }
                if values[0].isNull { values[0] = .int(Int64(rows.count + 1)) }
                rows.append(values)
            }
        }
        return newRows.enumerated().map { index, row in
            var row = row
            if row[columns[0].name] == nil || row[columns[0].name] == .null {
                row[columns[0].name] = .int(Int64(index))
            }
            return row
        }
    }
}

/// Returns rows a few at a time, as a real scan would.
final class BatchedScan: ForeignScan {
    private let remaining: Mutex<ArraySlice<[SQLValue]>>
    private let batch: Int

    init(_ rows: [[SQLValue]], batch: Int) {
        remaining = Mutex(rows[...])
        self.batch = batch
    }

    func next() async throws -> [[SQLValue]]? {
        remaining.withLock { remaining in
            guard !remaining.isEmpty else { return nil }
            let part = Array(remaining.prefix(batch))
            remaining = remaining.dropFirst(batch)
            return part
        }
    }

    func close() async {}
}

struct MemoryCatalog: ForeignCatalog {
    let tables: [MemoryTable]
    /// Not listed (IMPORT leaves it out), but queryable.
    var endless: EndlessTable?
    var schemas: [String] { Array(Set(tables.compactMap(\.name.schema))).sorted() }

    func tables(in schema: String) async -> [any ForeignTable] { tables.filter { $0.name.schema == schema } }

    func table(_ name: TableName) async -> (any ForeignTable)? {
        if let endless, endless.name == name { return endless }
        return tables.first { $0.name == name }
    }
}

/// A table whose scan delivers one row every 100 ms, forever: for cancellation tests.
final class EndlessTable: ForeignTable {
    let name = TableName(schema: "mem", name: "endless")
    let columns = [ForeignColumn("n", .int8)]

    func estimatedRows() async -> Int { 1_000_000 }

    func scan(_ request: ScanRequest) async throws -> any ForeignScan { EndlessScan() }

    func insert(_ rows: [[String: SQLValue]]) async throws -> [[String: SQLValue]] { rows }
}

final class EndlessScan: ForeignScan {
    func next() async throws -> [[SQLValue]]? {
        try await Task.sleep(for: .milliseconds(100))
        return [[.int(1)]]
    }

    func close() async {}
}
