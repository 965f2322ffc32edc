import PostgresClient

/// The SELECT of a read.
extension RestQuery {
    /// Rows to skip and return, after `offset`/`limit` and the `Range` header.
    struct Page: Sendable, Equatable {
        var offset = 0
        var limit: Int?
    }

    /// `limit`/`offset` narrowed by a `Range: first-last` header (PostgREST intersects them).
    func page(range: (first: Int, last: Int?)?) -> Page {
        var page = Page(offset: root.offset ?? 0, limit: root.limit)
        if let range {
            let start = max(page.offset, range.first)
            var end = range.last.map { $0 + 1 }
            if let limit = page.limit { end = min(end ?? Int.max, page.offset + limit) }
            page.offset = start
            page.limit = end.map { max(0, $0 - start) }
        }
        return page
    }

    /// The SELECT of a read. `timeBucket`: `time_bucket` (TimescaleDB) instead of `date_bin`.
    func selectStatement(
        _ table: TableInfo, timeBucket: Bool, page: Page? = nil, embeds: [ResolvedEmbed] = []
    ) throws -> SQLStatement {
        if !embeds.isEmpty { return try embeddingStatement(table, page: page, embeds: embeds) }
        var parameters = table.sourceParameters
        var sql = "SELECT "
        var groupCount = 0
        if let bucket, let timeColumn {
            parameters.append(bucket)
            let width = "$\(parameters.count)::interval"
            let time = SQL.identifier(timeColumn)
            let type = table.column(timeColumn)?.type ?? ""
            let origin =
                type.contains("with time zone") ? "TIMESTAMPTZ '2000-01-03 00:00:00+00'" : "TIMESTAMP '2000-01-03'"
            let expression =
                timeBucket ? "time_bucket(\(width), \(time))" : "date_bin(\(width), \(time), \(origin))"
            var items = ["\(expression) AS bucket"]
            for item in select {
                guard case .field(let field, let alias, let cast) = item else { continue }
                items.append(Self.fieldSQL(field, alias: alias, cast: cast, &parameters))
            }
            groupCount = items.count
            items += bucketAggregates.map { aggregate in
                let argument = aggregate.column == "*" ? "*" : SQL.identifier(aggregate.column)
                return "\(aggregate.function)(\(argument)) AS \(SQL.identifier(aggregate.alias))"
            }
            sql += items.joined(separator: ", ")
        } else {
            let (items, grouped) = try selectList(table, &parameters)
            sql += items
            groupCount = grouped
        }
        sql += " FROM \(table.fromClause)"
        sql += Self.whereClause(root, &parameters, qualifier: nil, table: table)
        if groupCount > 0 {
            sql += " GROUP BY " + (1...groupCount).map(String.init).joined(separator: ", ")
        }
        var orderItems: [String] = []
        if bucket != nil {
            // Buckets order by their output columns too (`order=count.desc`), by time otherwise.
            let known = Set(["bucket"] + bucketAggregates.map(\.alias))
            for item in root.order {
                if known.contains(item.field.column) && item.field.steps.isEmpty {
                    orderItems.append(
                        SQL.identifier(item.field.column) + (item.descending ? " DESC" : " ASC")
                            + (item.nulls.map { " \($0)" } ?? ""))
                } else {
                    orderItems.append(item.sql(&parameters, qualifier: nil))
                }
            }
            if orderItems.isEmpty { orderItems = ["\"bucket\" ASC"] }
        } else {
            for item in root.order { orderItems.append(item.sql(&parameters, qualifier: nil)) }
        }
        if !orderItems.isEmpty { sql += " ORDER BY " + orderItems.joined(separator: ", ") }
        let page = page ?? self.page(range: nil)
        if let limit = page.limit { sql += " LIMIT \(limit)" }
        if page.offset > 0 { sql += " OFFSET \(page.offset)" }
        return SQLStatement(text: sql, parameters: parameters)
    }

    /// `SELECT count(*)` of the rows the filters match (no paging): `Prefer: count=exact`.
    func countStatement(_ table: TableInfo, embeds: [ResolvedEmbed] = [], timeBucket: Bool = false) -> SQLStatement {
        let grouped = bucket != nil || select.contains { if case .aggregate = $0 { true } else { false } }
        if grouped, let rows = try? selectStatement(table, timeBucket: timeBucket, page: Page()) {
            // Aggregates count their groups, not the rows grouped.
            return SQLStatement(text: "SELECT count(*) FROM (\(rows.text)) pgrst_groups", parameters: rows.parameters)
        }
        var parameters = table.sourceParameters
        guard embeds.contains(where: \.embed.inner) else {
            let sql =
                "SELECT count(*) FROM \(table.fromClause)"
                + Self.whereClause(root, &parameters, qualifier: nil, table: table)
            return SQLStatement(text: sql, parameters: parameters)
        }
        let sql =
            "SELECT count(*) FROM \(table.source ?? table.qualified) AS pgrst_0"
            + rootWhere(table, embeds: embeds, &parameters)
        return SQLStatement(text: sql, parameters: parameters)
    }

    /// A read with embedded resources: the table is `pgrst_0`, each embedded resource a
    /// correlated subquery that builds its JSON (PostgREST's shape: an object for to-one, an
    /// array otherwise).
    private func embeddingStatement(_ table: TableInfo, page: Page?, embeds: [ResolvedEmbed]) throws -> SQLStatement {
        guard bucket == nil else { throw RestError.parse("bucket= cannot be combined with embedded resources") }
        if select.contains(where: { if case .aggregate = $0 { true } else { false } }) {
            throw RestError.parse("aggregates cannot be combined with embedded resources")
        }
        var parameters = table.sourceParameters
        let items = Self.levelItems(select, table: table, alias: "pgrst_0", embeds: embeds, depth: 0, &parameters)
        var sql = "SELECT \(items.joined(separator: ", ")) FROM \(table.source ?? table.qualified) AS pgrst_0"
        sql += rootWhere(table, embeds: embeds, &parameters)
        if !root.order.isEmpty {
            var orders: [String] = []
            for order in root.order { orders.append(order.sql(&parameters, qualifier: "pgrst_0")) }
            sql += " ORDER BY " + orders.joined(separator: ", ")
        }
        let page = page ?? self.page(range: nil)
        if let limit = page.limit { sql += " LIMIT \(limit)" }
        if page.offset > 0 { sql += " OFFSET \(page.offset)" }
        return SQLStatement(text: sql, parameters: parameters)
    }

    /// The root's filters (qualified by `pgrst_0`) and the `!inner` embeds' EXISTS conditions.
    private func rootWhere(_ table: TableInfo, embeds: [ResolvedEmbed], _ parameters: inout [String?]) -> String {
        var conditions: [String] = []
        for condition in root.conditions {
            conditions.append(condition.sql(&parameters, qualifier: "pgrst_0") { table.column($0)?.type })
        }
        conditions += Self.innerConditions(embeds, parentAlias: "pgrst_0", depth: 0, &parameters)
        return conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
    }

    /// The select list and how many of its leading items are grouped (aggregates present).
    private func selectList(_ table: TableInfo, _ parameters: inout [String?]) throws -> (String, Int) {
        var plain: [String] = []
        var aggregates: [String] = []
        var star = false
        for item in select {
            switch item {
            case .star:
                star = true
            case .field(let field, let alias, let cast):
                plain.append(Self.fieldSQL(field, alias: alias, cast: cast, &parameters))
            case .aggregate(let function, let field, let alias, let cast):
                let argument = field.map { $0.sql(&parameters, qualifier: nil) } ?? "*"
                var expression = "\(function)(\(argument))"
                if let cast { expression = "(\(expression))::\(cast)" }
                aggregates.append("\(expression) AS \(SQL.identifier(alias ?? function))")
            case .embed(let embed):
                throw RestError(
                    status: .badRequest, code: "PGRST200",
                    message:
                        "Could not find a relationship between '\(table.name)' and '\(embed.name)' in the schema cache",
                    hint: "a function's result cannot embed other resources")
            }
        }
        if !aggregates.isEmpty {
            guard !star else {
                throw RestError.parse(
                    "select=* cannot be combined with aggregates: name the columns to group by, e.g. select=device,temp.avg()"
                )
            }
            return ((plain + aggregates).joined(separator: ", "), plain.count)
        }
        if star { plain.insert(plain.isEmpty ? "*" : "\(table.rowReference).*", at: 0) }
        return (plain.joined(separator: ", "), 0)
    }

    /// A select item's expression, cast when asked.
    static func fieldExpression(
        _ field: RestField, cast: String?, qualifier: String? = nil, _ parameters: inout [String?]
    ) -> String {
        let expression = field.sql(&parameters, qualifier: qualifier)
        return cast.map { "(\(expression))::\($0)" } ?? expression
    }

    static func fieldSQL(_ field: RestField, alias: String?, cast: String?, _ parameters: inout [String?]) -> String {
        let expression = fieldExpression(field, cast: cast, &parameters)
        let name = alias ?? field.outputName
        return alias == nil && cast == nil && field.steps.isEmpty
            ? expression : "\(expression) AS \(SQL.identifier(name))"
    }
}
