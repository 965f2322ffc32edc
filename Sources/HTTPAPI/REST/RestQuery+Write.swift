import Foundation
import PostgresClient

/// INSERT (and upsert), UPDATE and DELETE of the REST proxy. Each is one statement that
/// answers one row: the affected rows as a JSON array (or NULL) and their count.
extension RestQuery {
    /// What a write answers besides the count.
    enum Returning: Sendable, Equatable {
        case nothing
        /// The affected rows as JSON, shaped by `select=`.
        case rows
    }

    /// The parsed body of an insert: its text (bound as one parameter), its objects' key sets.
    struct InsertBody: Sendable {
        var json: String
        /// The columns named by any object (or by `columns=`), in first-seen order.
        var columns: [String]
        /// Objects grouped by the keys they have (for `missing=default`), as 1-based positions.
        var groups: [(columns: [String], positions: [Int])]
    }

    /// Reads an insert's body: an object or an array of objects whose keys are columns.
    static func insertBody(_ body: String, table: TableInfo, columns chosen: [String]?) throws -> InsertBody {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(body.utf8)) else {
            throw RestError.body("the body is not JSON: send an object or an array of objects")
        }
        let objects: [[String: Any]]
        var json = body
        if let object = parsed as? [String: Any] {
            objects = [object]
            json = "[\(body)]"
        } else if let list = parsed as? [Any], let typed = list as? [[String: Any]], typed.count == list.count {
            objects = typed
        } else {
            throw RestError.body("expected a JSON object or an array of objects")
        }
        var columns: [String] = []
        var groups: [[String]: [Int]] = [:]
        var order: [[String]] = []
        for (index, object) in objects.enumerated() {
            var keys = object.keys.sorted()
            if let chosen { keys = keys.filter { chosen.contains($0) } }
            for key in keys where !columns.contains(key) {
                guard table.column(key) != nil else {
                    throw RestError.unknownBodyColumn(key, in: table)
                }
                columns.append(key)
            }
            if groups[keys] == nil { order.append(keys) }
            groups[keys, default: []].append(index + 1)
        }
        if let chosen { columns = chosen }
        return InsertBody(json: json, columns: columns, groups: order.map { ($0, groups[$0]!) })
    }

    /// INSERT of the body's rows: every column the body names (NULL where an object lacks it),
    /// or with `missingDefault` one INSERT per key set so that absent keys take their defaults.
    /// `resolution`: an upsert on `on_conflict=` (or the primary key).
    func insertStatement(
        _ table: TableInfo, body: InsertBody, missingDefault: Bool, resolution: RestPreferences.Resolution?,
        returning: Returning
    ) throws -> SQLStatement {
        var parameters: [String?] = [body.json]
        var conflict = ""
        if let resolution {
            let keys = onConflict ?? table.primaryKey
            guard !keys.isEmpty else {
                throw RestError.parse(
                    "an upsert on \(table.display) needs on_conflict=<columns>: the table has no primary key")
            }
            let list = keys.map(SQL.identifier).joined(separator: ", ")
            let updated = body.columns.filter { !keys.contains($0) }
            if resolution == .ignoreDuplicates || updated.isEmpty {
                conflict = " ON CONFLICT (\(list)) DO NOTHING"
            } else {
                conflict =
                    " ON CONFLICT (\(list)) DO UPDATE SET "
                    + updated.map { "\(SQL.identifier($0)) = EXCLUDED.\(SQL.identifier($0))" }.joined(separator: ", ")
            }
        }
        let groups: [(columns: [String], positions: [Int]?)] =
            missingDefault && body.groups.count > 1
            ? body.groups.map { ($0.columns, $0.positions) }
            : [(missingDefault ? (body.groups.first?.columns ?? body.columns) : body.columns, nil)]
        var inserts: [String] = []
        for (index, group) in groups.enumerated() {
            var filter = ""
            if let positions = group.positions {
                parameters.append("{" + positions.map(String.init).joined(separator: ",") + "}")
                filter = " WHERE pgrst_body.n = ANY($\(parameters.count)::int[])"
            }
            if group.columns.isEmpty {
                // `{}`: every column from its default, one row per object.
                inserts.append(
                    "pgrst_insert_\(index) AS (INSERT INTO \(table.qualified) SELECT FROM json_array_elements($1::json) WITH ORDINALITY AS pgrst_body(j, n)\(filter)\(conflict) RETURNING \(table.qualified).*)"
                )
                continue
            }
            let list = group.columns.map(SQL.identifier).joined(separator: ", ")
            let values = group.columns.map { "pgrst_row.\(SQL.identifier($0))" }.joined(separator: ", ")
            inserts.append(
                "pgrst_insert_\(index) AS (INSERT INTO \(table.qualified) (\(list)) SELECT \(values) FROM json_array_elements($1::json) WITH ORDINALITY AS pgrst_body(j, n) CROSS JOIN LATERAL json_populate_record(NULL::\(table.qualified), pgrst_body.j) AS pgrst_row\(filter) ORDER BY pgrst_body.n\(conflict) RETURNING \(table.qualified).*)"
            )
        }
        let union = (0..<inserts.count).map { "SELECT * FROM pgrst_insert_\($0)" }.joined(separator: " UNION ALL ")
        let text =
            "WITH " + inserts.joined(separator: ", ") + ", pgrst_rows AS (\(union)) "
            + (try result(table, returning: returning, &parameters))
        return SQLStatement(text: text, parameters: parameters)
    }

    /// UPDATE of the rows the filters match, with the body object's columns.
    func updateStatement(_ table: TableInfo, body: String, columns: [String], returning: Returning) throws
        -> SQLStatement
    {
        var parameters: [String?] = [body]
        // Scalar subqueries rather than UPDATE … FROM: the body's record has every column of the
        // table, which would make the filters' column names ambiguous.
        let assignments = columns.map {
            "\(SQL.identifier($0)) = (SELECT \(SQL.identifier($0)) FROM json_populate_record(NULL::\(table.qualified), $1::json))"
        }
        let update =
            "UPDATE \(table.qualified) SET \(assignments.joined(separator: ", "))"
            + (try targetRows(table, &parameters))
        return SQLStatement(
            text: "WITH pgrst_rows AS (\(update) RETURNING \(table.qualified).*) "
                + (try result(table, returning: returning, &parameters)),
            parameters: parameters)
    }

    func deleteStatement(_ table: TableInfo, returning: Returning) throws -> SQLStatement {
        var parameters: [String?] = []
        let delete = "DELETE FROM \(table.qualified)" + (try targetRows(table, &parameters))
        return SQLStatement(
            text: "WITH pgrst_rows AS (\(delete) RETURNING \(table.qualified).*) "
                + (try result(table, returning: returning, &parameters)),
            parameters: parameters)
    }

    /// The WHERE of an update or delete: the filters, and with `limit` (PostgREST's limited
    /// updates and deletes) the first rows in `order`, by their physical position.
    private func targetRows(_ table: TableInfo, _ parameters: inout [String?]) throws -> String {
        let filters = Self.whereClause(root, &parameters, qualifier: nil, table: table)
        guard root.limit != nil || root.offset != nil else { return filters }
        // (tableoid, ctid): a ctid is unique only within one partition or chunk.
        var inner = "SELECT tableoid, ctid FROM \(table.qualified)" + filters
        if !root.order.isEmpty {
            var items: [String] = []
            for item in root.order { items.append(item.sql(&parameters, qualifier: nil)) }
            inner += " ORDER BY " + items.joined(separator: ", ")
        }
        if let limit = root.limit { inner += " LIMIT \(limit)" }
        if let offset = root.offset, offset > 0 { inner += " OFFSET \(offset)" }
        let outer = Self.whereClause(root, &parameters, qualifier: nil, table: table)
        return outer + (outer.isEmpty ? " WHERE " : " AND ") + "(tableoid, ctid) IN (\(inner))"
    }

    /// `SELECT <rows as JSON or NULL>, count(*) FROM pgrst_rows`.
    private func result(_ table: TableInfo, returning: Returning, _ parameters: inout [String?]) throws -> String {
        guard returning == .rows else { return "SELECT NULL, count(*) FROM pgrst_rows" }
        var items: [String] = []
        for item in select {
            switch item {
            case .star: items.append("pgrst_rows.*")
            case .field(let field, let alias, let cast):
                items.append(Self.fieldSQL(field, alias: alias, cast: cast, &parameters))
            case .aggregate, .embed:
                throw RestError.parse("the representation of a write takes columns only in select=")
            }
        }
        return
            "SELECT coalesce(json_agg(row_to_json(pgrst_shaped)), '[]')::text, (SELECT count(*) FROM pgrst_rows) FROM (SELECT \(items.joined(separator: ", ")) FROM pgrst_rows) pgrst_shaped"
    }
}
