import PostgresClient

/// A table of the target database as the apply statements need it: its columns and types,
/// and the column sets of its primary key and unique indexes (ON CONFLICT needs one of them).
struct TargetTable {
    struct Column: Equatable {
        enum Kind: Equatable {
            /// Written from the JSON value's text (strings unescaped).
            case plain
            /// json/jsonb: written as the JSON itself.
            case json
            /// Events carry bytea as base64 text.
            case bytea
            /// Written as an array literal from the JSON array.
            case array(element: Kind.Element)

            enum Element: Equatable {
                case plain, json, bytea
            }
        }

        var name: String
        /// `format_type` of the column: what `ADD COLUMN`, `CREATE TABLE` and casts write.
        var type: String
        var kind: Kind
        /// The type of the staging column: a domain's base type (the domain's checks then run
        /// when the row reaches the target, where a refusal names it).
        var stageType: String = ""
        /// How a binary COPY writes the column; nil when pgbridge does not write that type in
        /// binary. Only PostgreSQL's own types (`pg_catalog`), and domains over its text types:
        /// sources send other domains' values as JSON strings, which the target's text input
        /// reads as the base type (a domain over jsonb gets the object, not a JSON string).
        var binary: CopyBinary.Kind?
    }

    var schema: String?
    var name: String
    var columns: [Column]
    /// Primary key first, then unique indexes without predicate or expression.
    var uniqueKeys: [[String]]

    /// `"schema"."name"` (or `"name"`, found through the search path).
    var qualified: String { Self.qualified(schema: schema, name: name) }

    /// A rendered `table` template: `schema.name`, or a name the search path finds.
    static func split(_ text: String) -> (schema: String?, name: String) {
        let parts = text.split(separator: ".", maxSplits: 1).map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : (nil, text)
    }

    static func qualified(schema: String?, name: String) -> String {
        schema.map { "\(SQL.identifier($0)).\(SQL.identifier(name))" } ?? SQL.identifier(name)
    }

    func column(_ name: String) -> Column? { columns.first { $0.name == name } }

    /// The unique key whose columns are exactly `key` (in any order).
    func uniqueKey(matching key: [String]) -> [String]? {
        let wanted = Set(key)
        return uniqueKeys.first { Set($0) == wanted }
    }

    static func kind(type: String, category: String, element: String) -> Column.Kind {
        func elementKind(_ name: String) -> Column.Kind.Element {
            switch name {
            case "bytea": .bytea
            case "json", "jsonb": .json
            default: .plain
            }
        }
        if category == "A" { return .array(element: elementKind(element)) }
        switch type {
        case "bytea": return .bytea
        case "json", "jsonb": return .json
        default: return .plain
        }
    }

    /// Reads the table from the catalog; nil when it does not exist.
    static func load(schema: String?, name: String, _ sql: SQLConnection) throws -> TargetTable? {
        let qualified = qualified(schema: schema, name: name)
        let exists = try sql.execute("SELECT to_regclass($1)::oid", [qualified])
        guard exists.rowCount == 1, exists.string(0, 0) != nil else { return nil }
        let columns = try sql.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory, coalesce(e.typname, ''),
                   CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
                        ELSE format_type(a.atttypid, a.atttypmod) END,
                   CASE WHEN t.typtype = 'd' THEN
                            CASE WHEN b.typnamespace = 'pg_catalog'::regnamespace
                                 AND b.typname IN ('text', 'varchar', 'bpchar') THEN b.typname END
                        WHEN t.typnamespace = 'pg_catalog'::regnamespace THEN t.typname END
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'
            LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [qualified])
        var table = TargetTable(schema: schema, name: name, columns: [], uniqueKeys: [])
        for row in 0..<columns.rowCount {
            table.columns.append(
                Column(
                    name: columns.string(row, 0) ?? "", type: columns.string(row, 1) ?? "text",
                    kind: Self.kind(
                        type: columns.string(row, 2) ?? "", category: columns.string(row, 3) ?? "",
                        element: columns.string(row, 4) ?? ""),
                    stageType: columns.string(row, 5) ?? "text",
                    binary: columns.string(row, 6).flatMap(CopyBinary.Kind.init(typeName:))))
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
