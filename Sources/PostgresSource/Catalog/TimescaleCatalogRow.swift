import BridgeCore

/// A catalog row decoded from the stream.
enum TimescaleCatalogRow: Equatable {
    /// `schema`/`name` come from `schema_name`/`table_name` (2.14–2.28) or from the `relid`
    /// regclass (2.29+).
    case chunk(id: Int64, hypertableID: Int64, schema: String, name: String)
    case slice(id: Int64, chunkID: Int64, dimensionID: Int64, rangeStart: Int64, rangeEnd: Int64)

    init?(table: TimescaleCatalogTable, columns: [String], row: TupleView) {
        func value(_ name: String) -> String? {
            columns.firstIndex(of: name).flatMap { row.string(at: $0) }
        }
        func integer(_ name: String) -> Int64? { value(name).flatMap { Int64($0) } }
        switch table {
        case .chunk:
            guard let id = integer("id"), let hypertableID = integer("hypertable_id") else { return nil }
            if let schema = value("schema_name"), let name = value("table_name") {
                self = .chunk(id: id, hypertableID: hypertableID, schema: schema, name: name)
            } else if let relid = value("relid"), let (schema, name) = Self.qualifiedName(relid) {
                self = .chunk(id: id, hypertableID: hypertableID, schema: schema, name: name)
            } else {
                return nil
            }
        case .dimensionSlice:
            guard let id = integer("id"), let chunkID = integer("chunk_id"), let dimensionID = integer("dimension_id"),
                let start = integer("range_start"), let end = integer("range_end")
            else { return nil }
            self = .slice(id: id, chunkID: chunkID, dimensionID: dimensionID, rangeStart: start, rangeEnd: end)
        }
    }

    /// `schema.name` as regclass prints it (names quoted where needed).
    static func qualifiedName(_ text: String) -> (String, String)? {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var iterator = Array(text).makeIterator()
        var pending: Character? = iterator.next()
        while let character = pending {
            pending = iterator.next()
            if quoted {
                if character == "\"" {
                    if pending == "\"" {
                        current.append("\"")
                        pending = iterator.next()
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "." {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }
}
