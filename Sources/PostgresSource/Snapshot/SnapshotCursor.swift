import BridgeCore
import PostgresClient

/// Reads one snapshot unit through a server-side cursor, `batchRows` rows per round trip, and
/// hands each row to `onRow` as a TupleView (memory is bounded by one fetch).
enum SnapshotCursor {
    /// - Parameters:
    ///   - resumeKey: text of the last key already delivered (key-range resume), if any.
    ///   - afterFetch: called after each fetch with the rows read and the last row's key text;
    ///     returning false stops reading (the cursor is closed).
    /// - Returns: true when the unit was read to its end.
    static func read(
        _ unit: SnapshotUnit, on reader: PGConnection, resumeKey: [String]?, batchRows: Int,
        onRow: (TupleView) throws -> Void, afterFetch: (Int, [String]?) throws -> Bool
    ) throws -> Bool {
        var conditions: [String] = unit.filter.map { [$0] } ?? []
        let keyList = unit.keyColumns.map { SQL.identifier(unit.relation.columns[$0].name) }.joined(separator: ", ")
        if let resumeKey, !unit.keyColumns.isEmpty, resumeKey.count == unit.keyColumns.count {
            let literals = zip(resumeKey, unit.keyTypes).map { "\(SQL.literal($0))::\($1)" }.joined(separator: ", ")
            conditions.append("ROW(\(keyList)) > ROW(\(literals))")
        }
        let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let orderClause = unit.keyColumns.isEmpty ? "" : " ORDER BY \(keyList)"
        try reader.execute(
            "DECLARE pgbridge_snapshot NO SCROLL CURSOR FOR SELECT \(unit.columnList) FROM \(unit.useOnly ? "ONLY " : "")\(unit.physical)"
                + whereClause + orderClause)
        defer { _ = try? reader.execute("CLOSE pgbridge_snapshot") }
        var values: [TupleValue] = []
        var scratch: [UInt8] = []
        while true {
            let result = try reader.execute("FETCH \(batchRows) FROM pgbridge_snapshot")
            let rowCount = result.rowCount
            if rowCount == 0 { return true }
            let columnCount = result.columnCount
            for row in 0..<rowCount {
                scratch.removeAll(keepingCapacity: true)
                values.removeAll(keepingCapacity: true)
                for column in 0..<columnCount {
                    result.withValue(row, column) { value in
                        if let value {
                            values.append(.text(offset: Int32(scratch.count), length: Int32(value.count)))
                            scratch.append(contentsOf: value)
                        } else {
                            values.append(.null)
                        }
                    }
                }
                try scratch.withUnsafeBytes { buffer in try onRow(TupleView(values: values, buffer: buffer)) }
            }
            let lastKey = unit.keyColumns.isEmpty ? nil : unit.keyColumns.map { result.string(rowCount - 1, $0) ?? "" }
            if try !afterFetch(rowCount, lastKey) { return false }
        }
    }
}
