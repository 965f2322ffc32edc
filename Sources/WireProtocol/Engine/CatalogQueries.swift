/// The catalog queries of postgres_fdw's IMPORT FOREIGN SCHEMA, answered from pgbridge's own
/// tables: a `pg_namespace` lookup, and a pg_class/pg_attribute join listing every column.
enum CatalogQueries {
    struct Result {
        var columns: [ResultColumn]
        var rows: [[SQLValue]]
    }

    /// The answer to `sql` if it is one of those catalog queries; nil otherwise.
    static func answer(_ sql: String, catalog: any ForeignCatalog) async throws(WireError) -> Result? {
        guard isCatalogQuery(sql) else { return nil }
        let lowered = sql.lowercased()
        let tokens = try SQLLexer.tokenize(sql)
        if lowered.contains("pg_attribute") && lowered.contains("pg_class") {
            guard let schema = literal(after: ["nspname", "="], in: tokens) else { return nil }
            return await columns(of: schema, filter: relationFilter(tokens), catalog: catalog)
        }
        guard lowered.contains("select 1 from pg_catalog.pg_namespace"),
            let schema = literal(after: ["nspname", "="], in: tokens)
        else { return nil }
        let exists = catalog.schemas.contains(schema)
        return Result(columns: [ResultColumn("?column?", .int4)], rows: exists ? [[.int(1)]] : [])
    }

    /// The string literal that follows the identifier/symbol sequence `words`.
    static func literal(after words: [String], in tokens: [SQLToken]) -> String? {
        guard tokens.count > words.count else { return nil }
        for start in 0..<(tokens.count - words.count) {
            let matches = words.enumerated().allSatisfy { offset, word in
                switch tokens[start + offset] {
                case .identifier(let name, _): return name == word
                case .symbol(let symbol): return symbol == word
                default: return false
                }
            }
            if matches, case .string(let text) = tokens[start + words.count] { return text }
        }
        return nil
    }

    /// `AND c.relname IN ('a', 'b')` (LIMIT TO) or `NOT IN` (EXCEPT).
    static func relationFilter(_ tokens: [SQLToken]) -> (names: Set<String>, excluded: Bool)? {
        guard
            let start = tokens.indices.first(where: { index in
                tokens[index] == .identifier("relname", quoted: false) && index + 1 < tokens.count
                    && (tokens[index + 1].isKeyword("in") || tokens[index + 1].isKeyword("not"))
            })
        else { return nil }
        var index = start + 1
        var excluded = false
        if tokens[index].isKeyword("not") {
            excluded = true
            index += 1
        }
        guard tokens.indices.contains(index + 1), tokens[index].isKeyword("in"), tokens[index + 1] == .symbol("(")
        else { return nil }
        index += 2
        var names: Set<String> = []
        while index < tokens.count, tokens[index] != .symbol(")") {
            if case .string(let name) = tokens[index] { names.insert(name) }
            index += 1
        }
        return (names, excluded)
    }

    static func columns(
        of schema: String, filter: (names: Set<String>, excluded: Bool)?, catalog: any ForeignCatalog
    ) async -> Result {
        let columns = [
            ResultColumn("relname", .name), ResultColumn("attname", .name), ResultColumn("format_type", .text),
            ResultColumn("attnotnull", .bool), ResultColumn("pg_get_expr", .text),
            ResultColumn("attgenerated", .char), ResultColumn("collname", .name), ResultColumn("nspname", .name),
        ]
        var rows: [[SQLValue]] = []
        let tables = await catalog.tables(in: schema).sorted { $0.name.name < $1.name.name }
        for table in tables {
            if let filter, filter.names.contains(table.name.name) == filter.excluded { continue }
            for column in table.columns {
                // Text compares byte-wise in pgbridge: the columns are declared COLLATE "C", so
                // that what PostgreSQL does locally agrees with what pgbridge evaluated.
                let collated = column.type == .text || column.type == .name
                rows.append([
                    .text(table.name.name), .text(column.name), .text(column.type.description), .bool(column.notNull),
                    .null, .text(""), collated ? .text("C") : .null, collated ? .text("pg_catalog") : .null,
                ])
            }
        }
        return Result(columns: columns, rows: rows)
    }
}

extension CatalogQueries {
    /// Whether `sql` reads PostgreSQL's catalogs (the IMPORT FOREIGN SCHEMA queries), not a table
    /// of pgbridge: a query on a topic that mentions pg_namespace in a literal is not one.
    static func isCatalogQuery(_ sql: String) -> Bool {
        let lowered = sql.lowercased()
        return lowered.contains("from pg_catalog.pg_namespace")
            || (lowered.contains("from pg_class") && lowered.contains("join pg_namespace"))
    }
}
