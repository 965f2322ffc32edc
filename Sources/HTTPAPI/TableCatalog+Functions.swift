import PostgresClient

/// A function the REST proxy may call at `/rpc/{name}`: its arguments and what it returns.
struct FunctionInfo: Sendable {
    struct Argument: Sendable {
        var name: String
        var type: String
        var hasDefault: Bool
        var variadic: Bool
    }

    enum Returns: Sendable {
        case void
        /// One value (or a set of values) of a base type.
        case scalar(type: String)
        /// Rows with these columns (a table's row type, OUT or TABLE parameters).
        case rows([TableInfo.Column])
    }

    var schema: String
    var name: String
    var inputs: [Argument]
    var returns: Returns
    var returnsSet: Bool
    /// `i`mmutable, `s`table or `v`olatile.
    var volatility: String

    var display: String { "\(schema).\(name)(\(inputs.map(\.name).joined(separator: ", ")))" }

    /// Whether a call naming `keys` fits: every key is an input, every input without a
    /// default is given.
    func accepts(_ keys: Set<String>) -> Bool {
        let names = Set(inputs.map(\.name))
        return keys.isSubset(of: names) && inputs.allSatisfy { $0.hasDefault || keys.contains($0.name) }
    }

    /// Takes the whole body as its one argument (`Prefer: params=single-object`, or a single
    /// unnamed json/jsonb parameter).
    var takesSingleObject: Bool {
        inputs.count == 1 && ["json", "jsonb"].contains(inputs[0].type)
    }
}

extension TableCatalog {
    /// The overloads of `schema.name` (ordinary functions, not procedures or aggregates).
    static func functions(_ connection: SQLConnection, schema: String, name: String) throws -> [FunctionInfo] {
        let result = try connection.execute(
            """
            SELECT p.proretset, p.provolatile::text, t.typtype::text, format_type(p.prorettype, NULL),
              p.pronargdefaults, coalesce(p.proargnames, '{}'::text[]),
              coalesce(p.proargmodes::text[], array_fill('i'::text, ARRAY[p.pronargs::int])),
              ARRAY(SELECT format_type(x.t, NULL) FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                    WITH ORDINALITY x(t, o) ORDER BY x.o),
              ARRAY(SELECT a.attname::text FROM pg_attribute a
                    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
              ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
            FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace
            JOIN pg_type t ON t.oid = p.prorettype
            WHERE n.nspname = $1 AND p.proname = $2 AND p.prokind = 'f'
            """, [schema, name])
        return (0..<result.rowCount).map { row in
            let names = SQL.parseTextArray(result.string(row, 5) ?? "{}")
            let modes = SQL.parseTextArray(result.string(row, 6) ?? "{}")
            let types = SQL.parseTextArray(result.string(row, 7) ?? "{}")
            let defaults = Int(result.string(row, 4) ?? "0") ?? 0
            var inputs: [FunctionInfo.Argument] = []
            var outputs: [TableInfo.Column] = []
            for (index, mode) in modes.enumerated() where index < types.count {
                let argument = index < names.count ? names[index] : ""
                if ["i", "b", "v"].contains(mode) {
                    inputs.append(.init(name: argument, type: types[index], hasDefault: false, variadic: mode == "v"))
                }
                if ["o", "b", "t"].contains(mode) { outputs.append(.init(name: argument, type: types[index])) }
            }
            for index in inputs.indices where index >= inputs.count - defaults { inputs[index].hasDefault = true }
            let returnType = result.string(row, 3) ?? ""
            let returns: FunctionInfo.Returns
            if returnType == "void" {
                returns = .void
            } else if result.string(row, 2) == "c" {
                let columns = SQL.parseTextArray(result.string(row, 8) ?? "{}")
                let columnTypes = SQL.parseTextArray(result.string(row, 9) ?? "{}")
                returns = .rows(zip(columns, columnTypes).map { TableInfo.Column(name: $0, type: $1) })
            } else if outputs.count > 1 || (returnType == "record" && !outputs.isEmpty) {
                returns = .rows(outputs)
            } else {
                returns = .scalar(type: returnType)
            }
            return FunctionInfo(
                schema: schema, name: name, inputs: inputs, returns: returns,
                returnsSet: result.string(row, 0) == "t", volatility: result.string(row, 1) ?? "v")
        }
    }
}
