import Synchronization
import WireProtocol

/// An in-memory table served over the wire protocol: tests the protocol and the SQL subset
/// (with a real postgres_fdw, or straight on `SelectExecution`) apart from Kafka, Redis and
/// RabbitMQ.
public final class MemoryTable: ForeignTable {
    public let name: TableName
    public let columns: [ForeignColumn]
    public let rows: Mutex<[[SQLValue]]>
    /// Every scan request, for tests of what postgres_fdw pushed down.
    public let scans = Mutex<[ScanRequest]>([])

    public init(schema: String, name: String, columns: [ForeignColumn], rows: [[SQLValue]]) {
        self.name = TableName(schema: schema, name: name)
        self.columns = columns
        self.rows = Mutex(rows)
    }

    public func estimatedRows() async -> Int { rows.withLock { $0.count } }

    public func scan(_ request: ScanRequest) async throws -> any ForeignScan {
        scans.withLock { $0.append(request) }
        return BatchedScan(rows.withLock { $0 }, batch: 7)
    }

    public func insert(_ newRows: [[String: SQLValue]]) async throws -> [[String: SQLValue]] {
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
public final class BatchedScan: ForeignScan {
    private let remaining: Mutex<ArraySlice<[SQLValue]>>
    private let batch: Int

    public init(_ rows: [[SQLValue]], batch: Int) {
        remaining = Mutex(rows[...])
        self.batch = batch
    }

    public func next() async throws -> [[SQLValue]]? {
        remaining.withLock { remaining in
            guard !remaining.isEmpty else { return nil }
            let part = Array(remaining.prefix(batch))
            remaining = remaining.dropFirst(batch)
            return part
        }
    }

    public func close() async {}
}

public struct MemoryCatalog: ForeignCatalog {
    public let tables: [MemoryTable]
    /// Not listed (IMPORT leaves it out), but queryable.
    public var endless: EndlessTable?

    public init(tables: [MemoryTable], endless: EndlessTable? = nil) {
        self.tables = tables
        self.endless = endless
    }

    public var schemas: [String] { Array(Set(tables.compactMap(\.name.schema))).sorted() }

    public func tables(in schema: String) async -> [any ForeignTable] { tables.filter { $0.name.schema == schema } }

    public func table(_ name: TableName) async -> (any ForeignTable)? {
        if let endless, endless.name == name { return endless }
        return tables.first { $0.name == name }
    }
}

/// A table whose scan delivers one row every 100 ms, forever: for cancellation tests.
public final class EndlessTable: ForeignTable {
    public let name = TableName(schema: "mem", name: "endless")
    public let columns = [ForeignColumn("n", .int8)]

    public init() {}

    public func estimatedRows() async -> Int { 1_000_000 }

    public func scan(_ request: ScanRequest) async throws -> any ForeignScan { EndlessScan() }

    public func insert(_ rows: [[String: SQLValue]]) async throws -> [[String: SQLValue]] { rows }
}

public final class EndlessScan: ForeignScan {
    public func next() async throws -> [[SQLValue]]? {
        try await Task.sleep(for: .milliseconds(100))
        return [[.int(1)]]
    }

    public func close() async {}
}
