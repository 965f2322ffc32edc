import Synchronization

/// A column of a table pgbridge serves.
public struct ForeignColumn: Sendable, Equatable {
    public var name: String
    public var type: SQLType
    public var notNull: Bool

    public init(_ name: String, _ type: SQLType, notNull: Bool = false) {
        self.name = name
        self.type = type
        self.notNull = notNull
    }
}

/// Bounds on one column taken from the WHERE clause's top-level AND terms: hints a table uses
/// to start and stop reading (Kafka offsets and times, Redis ID ranges). Every row a scan
/// returns is still checked against the whole WHERE clause, so a bound is never the only check.
public struct ColumnBounds: Sendable, Equatable {
    public var lower: SQLValue?
    public var lowerInclusive = true
    public var upper: SQLValue?
    public var upperInclusive = true
    /// `column = x` or `column IN (…)`: the only values that can match.
    public var values: [SQLValue]?

    public init() {}
}

/// What a scan is asked for.
public struct ScanRequest: Sendable {
    /// Bounds by column name.
    public var bounds: [String: ColumnBounds]
    /// The columns the query uses: a table may leave the others NULL (and skip decoding them).
    public var columns: Set<String>
    /// The most rows the query can use, when it has LIMIT (and OFFSET) and nothing that needs
    /// every row first (WHERE, ORDER BY, GROUP BY, aggregates): a table may read no more.
    public var rowLimit: Int?

    public init(bounds: [String: ColumnBounds] = [:], columns: Set<String> = [], rowLimit: Int? = nil) {
        self.bounds = bounds
        self.columns = columns
        self.rowLimit = rowLimit
    }
}

/// Rows of a scan, a batch at a time, in the table's column order.
public protocol ForeignScan: Sendable {
    /// The next batch; nil when the scan is complete.
    func next() async throws -> [[SQLValue]]?
    /// Releases what the scan holds (called once, also when the scan stops early).
    func close() async
}

/// A table pgbridge serves over the wire protocol.
public protocol ForeignTable: Sendable {
    var name: TableName { get }
    var columns: [ForeignColumn] { get }
    /// A rough row count, for EXPLAIN and `pg_relation_size` (ANALYZE).
    func estimatedRows() async -> Int
    func scan(_ request: ScanRequest) async throws -> any ForeignScan
    /// Writes rows (values by column name; absent = NULL) and returns each written row as it
    /// now is (with what the system assigned: offsets, IDs), for RETURNING.
    func insert(_ rows: [[String: SQLValue]]) async throws -> [[String: SQLValue]]
}

extension ForeignTable {
    func columnIndex() -> [String: Int] {
        Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1.name, $0) })
    }
}

/// The tables the server serves, by schema. Looked up per statement: tables may come and go
/// (pipes are created at run time).
public protocol ForeignCatalog: Sendable {
    var schemas: [String] { get }
    func tables(in schema: String) async -> [any ForeignTable]
    func table(_ name: TableName) async -> (any ForeignTable)?
}

/// A finished scan of rows held in memory (tests, small tables).
public final class MaterializedScan: ForeignScan {
    private let rows: [[SQLValue]]
    private let taken = Mutex(false)

    public init(_ rows: [[SQLValue]]) { self.rows = rows }

    public func next() async throws -> [[SQLValue]]? {
        let first = taken.withLock { taken -> Bool in
            defer { taken = true }
            return !taken
        }
        return first ? rows : nil
    }

    public func close() async {}
}
