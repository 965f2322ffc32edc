import PostgresClient

/// An embedded resource of `select=` matched to its table and foreign key, with its own
/// filters, order and paging (`items.price=gt.5`, `items.order=id`, `items.limit=2`).
struct ResolvedEmbed: Sendable {
    var embed: RestEmbed
    var table: TableInfo
    var relationship: TableRelationship
    var scope: RestQuery.Scope
    var children: [ResolvedEmbed]

    var outputName: String { embed.outputName }

    /// Every relation this resource and its nested ones read (junction tables too).
    var relations: [TableInfo] {
        var list = [table]
        if case .manyToMany(let schema, let junction, _, _) = relationship.kind {
            list.append(TableInfo(schema: schema, name: junction, columns: []))
        }
        return list + children.flatMap(\.relations)
    }
}

extension RestQuery {
    /// Matches every embedded resource of `select=` (nested ones too) to a relationship and
    /// checks its columns; `lookup` reads a table from the catalog.
    func resolveEmbeds(
        _ table: TableInfo, lookup: (String, String) async throws -> TableInfo?
    ) async throws -> [ResolvedEmbed] {
        var used: Set<[String]> = []
        let resolved = try await resolve(select, parent: table, path: [], used: &used, lookup: lookup)
        if let stray = scopes.keys.first(where: { !used.contains($0) }) {
            throw RestError.notEmbedded(
                stray,
                hint: "Verify that '\(stray.joined(separator: "."))' is included in the 'select' query parameter.")
        }
        return resolved
    }

    private func resolve(
        _ items: [RestSelectItem], parent: TableInfo, path: [String], used: inout Set<[String]>,
        lookup: (String, String) async throws -> TableInfo?
    ) async throws -> [ResolvedEmbed] {
        var resolved: [ResolvedEmbed] = []
        for item in items {
            guard case .embed(let embed) = item else { continue }
            let relationship = try Self.relationship(from: parent, to: embed)
            guard let table = try await lookup(relationship.schema, relationship.table) else {
                throw RestError.unknownTable(relationship.schema, relationship.table)
            }
            let childPath = path + [embed.outputName]
            var scope = scopes[childPath] ?? Scope()
            if scopes[childPath] == nil, embed.alias != nil {
                scope = scopes[path + [embed.name]] ?? Scope()
                if scopes[path + [embed.name]] != nil { used.insert(path + [embed.name]) }
            }
            used.insert(childPath)
            try Self.check(embed.items, scope: scope, in: table)
            if embed.spread, !relationship.isToOne {
                throw RestError(
                    status: .badRequest, code: "PGRST119",
                    message:
                        "A spread operation on '\(embed.name)' is not possible: it is not a to-one relationship of '\(parent.name)'"
                )
            }
            let children = try await resolve(
                embed.items, parent: table, path: childPath, used: &used, lookup: lookup)
            if embed.spread, !children.isEmpty {
                throw RestError.parse("a spread resource ('...\(embed.name)') cannot embed further resources")
            }
            resolved.append(
                ResolvedEmbed(embed: embed, table: table, relationship: relationship, scope: scope, children: children))
        }
        return resolved
    }

    /// The one relationship `embed` names: PGRST200 without one, PGRST201 (300) with several.
    static func relationship(from parent: TableInfo, to embed: RestEmbed) throws -> TableRelationship {
        var candidates = parent.relationships.filter { $0.table == embed.name }
        let sameSchema = candidates.filter { $0.schema == parent.schema }
        if !sameSchema.isEmpty { candidates = sameSchema }
        if let hint = embed.hint { candidates = candidates.filter { $0.matches(hint: hint) } }
        guard !candidates.isEmpty else {
            throw RestError(
                status: .badRequest, code: "PGRST200",
                message:
                    "Could not find a relationship between '\(parent.name)' and '\(embed.name)' in the schema cache",
                details: embed.hint.map { "no foreign key named or using '\($0)'" },
                hint: "embedding follows foreign keys between the two tables (or a junction table between them)")
        }
        guard candidates.count == 1 else {
            throw RestError(
                status: .multipleChoices, code: "PGRST201",
                message:
                    "Could not embed because more than one relationship was found for '\(parent.name)' and '\(embed.name)'",
                details: candidates.map(\.summary).joined(separator: "; "),
                hint:
                    "Try changing '\(embed.name)' to one of the following: "
                    + candidates.map { "'\(embed.name)!\($0.constraint)'" }.joined(separator: ", ")
                    + ". Find the desired relationship in the 'details' key.")
        }
        return candidates[0]
    }

    /// The embedded resource's columns and filters must be its table's.
    static func check(_ items: [RestSelectItem], scope: Scope, in table: TableInfo) throws {
        func require(_ column: String) throws {
            guard table.column(column) != nil else { throw RestError.unknownColumn(column, in: table.name) }
        }
        for item in items {
            switch item {
            case .field(let field, _, _): try require(field.column)
            case .aggregate:
                throw RestError.parse("aggregates in embedded resources are not supported: aggregate the table itself")
            case .star, .embed: break
            }
        }
        for condition in scope.conditions { for field in condition.fields { try require(field.column) } }
        for order in scope.order { try require(order.field.column) }
    }

    // MARK: SQL

    /// Select items of one level; `alias` qualifies its columns.
    static func levelItems(
        _ items: [RestSelectItem], table: TableInfo, alias: String, embeds: [ResolvedEmbed], depth: Int,
        _ parameters: inout [String?]
    ) -> [String] {
        var sql: [String] = []
        var embedIndex = 0
        for item in items {
            switch item {
            case .star:
                sql.append("\(alias).*")
            case .field(let field, let itemAlias, let cast):
                let expression = fieldExpression(field, cast: cast, qualifier: alias, &parameters)
                sql.append("\(expression) AS \(SQL.identifier(itemAlias ?? field.outputName))")
            case .aggregate:
                continue  // refused before SQL is built
            case .embed:
                let child = embeds[embedIndex]
                embedIndex += 1
                sql += embedItems(child, parentAlias: alias, depth: depth + 1, &parameters)
            }
        }
        return sql
    }

    /// The subquery (or, spread, the columns) of one embedded resource.
    static func embedItems(
        _ child: ResolvedEmbed, parentAlias: String, depth: Int, _ parameters: inout [String?]
    ) -> [String] {
        let alias = "pgrst_\(depth)"
        if child.embed.spread {
            return child.embed.items.compactMap { item in
                var expression: String
                let name: String
                switch item {
                case .field(let field, let itemAlias, let cast):
                    expression = fieldExpression(field, cast: cast, qualifier: alias, &parameters)
                    name = itemAlias ?? field.outputName
                case .star:
                    return child.table.columns.map { column in
                        "(SELECT \(alias).\(SQL.identifier(column.name)) \(source(child, alias: alias, parentAlias: parentAlias, &parameters))) AS \(SQL.identifier(column.name))"
                    }.joined(separator: ", ")
                default:
                    return nil
                }
                return
                    "(SELECT \(expression) \(source(child, alias: alias, parentAlias: parentAlias, &parameters))) AS \(SQL.identifier(name))"
            }
        }
        let items = levelItems(
            child.embed.items, table: child.table, alias: alias, embeds: child.children, depth: depth, &parameters)
        var inner =
            "SELECT \(items.joined(separator: ", ")) "
            + source(child, alias: alias, parentAlias: parentAlias, &parameters)
        if !child.scope.order.isEmpty {
            var orders: [String] = []
            for order in child.scope.order { orders.append(order.sql(&parameters, qualifier: alias)) }
            inner += " ORDER BY " + orders.joined(separator: ", ")
        }
        if let limit = child.scope.limit { inner += " LIMIT \(limit)" }
        if let offset = child.scope.offset, offset > 0 { inner += " OFFSET \(offset)" }
        let value =
            child.relationship.isToOne
            ? "(SELECT row_to_json(pgrst_j) FROM (\(inner)) pgrst_j)"
            : "(SELECT coalesce(json_agg(pgrst_j), '[]') FROM (\(inner)) pgrst_j)"
        return ["\(value) AS \(SQL.identifier(child.outputName))"]
    }

    /// `FROM … WHERE <join> AND <filters>` of an embedded resource.
    static func source(_ child: ResolvedEmbed, alias: String, parentAlias: String, _ parameters: inout [String?])
        -> String
    {
        let relationship = child.relationship
        var from = "FROM \(child.table.qualified) AS \(alias)"
        var conditions: [String] = []
        switch relationship.kind {
        case .manyToOne, .oneToMany:
            for (local, remote) in zip(relationship.localColumns, relationship.remoteColumns) {
                conditions.append("\(alias).\(SQL.identifier(remote)) = \(parentAlias).\(SQL.identifier(local))")
            }
        case .manyToMany(let junctionSchema, let junction, let junctionLocal, let junctionRemote):
            let junctionAlias = "\(alias)_j"
            from +=
                " JOIN \(SQL.identifier(junctionSchema)).\(SQL.identifier(junction)) AS \(junctionAlias) ON "
                + zip(junctionRemote, relationship.remoteColumns).map {
                    "\(junctionAlias).\(SQL.identifier($0)) = \(alias).\(SQL.identifier($1))"
                }.joined(separator: " AND ")
            for (junctionColumn, local) in zip(junctionLocal, relationship.localColumns) {
                conditions.append(
                    "\(junctionAlias).\(SQL.identifier(junctionColumn)) = \(parentAlias).\(SQL.identifier(local))")
            }
        }
        for condition in child.scope.conditions {
            conditions.append(condition.sql(&parameters, qualifier: alias) { child.table.column($0)?.type })
        }
        // `!inner` resources nested in this one leave out its rows without a match.
        let depth = Int(alias.dropFirst("pgrst_".count)) ?? 0
        conditions += innerConditions(child.children, parentAlias: alias, depth: depth, &parameters)
        return from + " WHERE " + conditions.joined(separator: " AND ")
    }

    /// `EXISTS (…)` for each `!inner` embedded resource: parents without a match are left out.
    static func innerConditions(
        _ embeds: [ResolvedEmbed], parentAlias: String, depth: Int, _ parameters: inout [String?]
    )
        -> [String]
    {
        embeds.filter(\.embed.inner).map { child in
            let alias = "pgrst_\(depth + 1)"
            return "EXISTS (SELECT 1 \(source(child, alias: alias, parentAlias: parentAlias, &parameters)))"
        }
    }
}
