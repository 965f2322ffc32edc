import PostgresClient

/// A table of the target database as the apply statements need it: its columns and types,
/// and the column sets of its primary key and unique indexes (ON CONFLICT needs one of them).
struct TargetTable {
    struct Column: Equatable {
        enum Kind: Equatable {
            case plain
            /// Events carry bytea as base64 text.
            case bytea
            case byteaArray
        }

        var name: String
        /// `format_type` of the column: what `ADD COLUMN` and `CREATE TABLE` write.
        var type: String
        var kind: Kind
    }

    var schema: String?
    var name: String
    var columns: [Column]
    /// Primary key first, then unique indexes without predicate or expression.
    var uniqueKeys: [[String]]

    /// `"schema"."name"` (or `"name"`, found through the search path).
    var qualified: String { Self.qualified(schema: schema, name: name) }

    static func qualified(schema: String?, name: String) -> String {
        schema.map { "\(quote($0)).\(quote(name))" } ?? quote(name)
    }

    static func quote(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    func column(_ name: String) -> Column? { columns.first { $0.name == name } }

    /// The unique key whose columns are exactly `key` (in any order).
    func uniqueKey(matching key: [String]) -> [String]? {
        let wanted = Set(key)
        return uniqueKeys.first { Set($0) == wanted }
    }

    /// Reads the table from the catalog; nil when it does not exist.
    static func load(schema: String?, name: String, _ sql: SQLConnection) throws -> TargetTable? {
        let qualified = qualified(schema: schema, name: name)
        let exists = try sql.execute("SELECT to_regclass($1)::oid", [qualified])
        guard exists.rowCount == 1, exists.string(0, 0) != nil else { return nil }
        let columns = try sql.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                   CASE WHEN t.typname = 'bytea' THEN 'b' WHEN t.typname = '_bytea' THEN 'B' ELSE '' END
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [qualified])
        var table = TargetTable(schema: schema, name: name, columns: [], uniqueKeys: [])
        for row in 0..<columns.rowCount {
            let kind: Column.Kind =
                switch columns.string(row, 2) {
                case "b": .bytea
                case "B": .byteaArray
                default: .plain
                }
            table.columns.append(
                Column(name: columns.string(row, 0) ?? "", type: columns.string(row, 1) ?? "text", kind: kind))
        }
        let keys = try sql.execute(
            """
            SELECT i.indexrelid::int8, a.attname
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
            ORDER BY i.indisprimary DESC, i.indexrelid, k.ord
            """, [qualified])
        var current: String?
        for row in 0..<keys.rowCount {
            let index = keys.string(row, 0)
            if index != current {
                table.uniqueKeys.append([])
                current = index
            }
            table.uniqueKeys[table.uniqueKeys.count - 1].append(keys.string(row, 1) ?? "")
        }
        return table
    }
}
