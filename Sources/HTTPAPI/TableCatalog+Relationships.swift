import PostgresClient

/// A foreign-key relationship of a table, as resource embedding uses it (PostgREST's
/// many-to-one, one-to-many, one-to-one and many-to-many through a junction table).
struct TableRelationship: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// This table's foreign key references the other table: one object.
        case manyToOne
        /// The other table's foreign key references this one: an array, or one object when
        /// the other table's key columns are unique (one-to-one).
        case oneToMany(unique: Bool)
        /// Both are referenced by a junction table: an array.
        case manyToMany(junctionSchema: String, junction: String, junctionLocal: [String], junctionRemote: [String])
    }

    var kind: Kind
    /// The foreign key's name (for m2m, the junction's key to the other table).
    var constraint: String
    /// For m2m, the junction's key to this table.
    var localConstraint: String?
    var schema: String
    var table: String
    /// This table's columns and the other table's, pairwise (m2m: the columns the junction
    /// references on each side).
    var localColumns: [String]
    var remoteColumns: [String]

    /// Whether the related rows come as one object.
    var isToOne: Bool {
        switch kind {
        case .manyToOne: true
        case .oneToMany(let unique): unique
        case .manyToMany: false
        }
    }

    /// Whether `hint` (after `!`) names this relationship: a constraint, a column of it, or the
    /// junction table.
    func matches(hint: String) -> Bool {
        if constraint == hint || localConstraint == hint { return true }
        if localColumns.contains(hint) || remoteColumns.contains(hint) { return true }
        if case .manyToMany(_, let junction, let local, let remote) = kind {
            return junction == hint || local.contains(hint) || remote.contains(hint)
        }
        return false
    }

    /// How a caller names it in an ambiguity error.
    var summary: String {
        switch kind {
        case .manyToOne: "many-to-one using \(constraint)"
        case .oneToMany(let unique): "\(unique ? "one-to-one" : "one-to-many") using \(constraint)"
        case .manyToMany(_, let junction, _, _): "many-to-many through \(junction)"
        }
    }
}

extension TableCatalog {
    /// Foreign keys touching the table, in both directions, and junction tables: tables with
    /// foreign keys to both sides that are part of their primary key (as PostgREST detects them).
    static func relationships(_ connection: SQLConnection, schema: String, name: String) throws -> [TableRelationship] {
        let result = try connection.execute(
            """
            WITH target AS (
              SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2
            ), fk AS (
              SELECT con.conname::text AS name, con.conrelid, con.confrelid,
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) AS fcols,
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = con.conrelid AND i.indisunique
                          AND i.indpred IS NULL AND i.indnkeyatts = cardinality(con.conkey)
                          AND (i.indkey::int2[])[0:i.indnkeyatts - 1] @> con.conkey) AS unique_cols,
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = con.conrelid AND i.indisprimary
                          AND (i.indkey::int2[]) @> con.conkey) AS in_primary_key
              FROM pg_constraint con WHERE con.contype = 'f'
            )
            SELECT 'm2o', fk.name, NULL::text, n.nspname::text, c.relname::text, fk.cols, fk.fcols, false,
                   NULL::text, NULL::text, NULL::text[], NULL::text[]
              FROM fk JOIN pg_class c ON c.oid = fk.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE fk.conrelid = (SELECT oid FROM target)
            UNION ALL
            SELECT 'o2m', fk.name, NULL::text, n.nspname::text, c.relname::text, fk.fcols, fk.cols, fk.unique_cols,
                   NULL::text, NULL::text, NULL::text[], NULL::text[]
              FROM fk JOIN pg_class c ON c.oid = fk.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE fk.confrelid = (SELECT oid FROM target)
            UNION ALL
            SELECT 'm2m', b.name, a.name, n.nspname::text, c.relname::text, a.fcols, b.fcols, false,
                   jn.nspname::text, j.relname::text, a.cols, b.cols
              FROM fk a JOIN fk b ON b.conrelid = a.conrelid AND b.name <> a.name
              JOIN pg_class c ON c.oid = b.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_class j ON j.oid = a.conrelid JOIN pg_namespace jn ON jn.oid = j.relnamespace
              WHERE a.confrelid = (SELECT oid FROM target) AND a.conrelid <> a.confrelid
                AND a.in_primary_key AND b.in_primary_key
            """, [schema, name])
        return (0..<result.rowCount).compactMap { row in
            guard let kindText = result.string(row, 0), let constraint = result.string(row, 1),
                let schema = result.string(row, 3), let table = result.string(row, 4)
            else { return nil }
            let local = SQL.parseTextArray(result.string(row, 5) ?? "{}")
            let remote = SQL.parseTextArray(result.string(row, 6) ?? "{}")
            let kind: TableRelationship.Kind
            switch kindText {
            case "m2o": kind = .manyToOne
            case "o2m": kind = .oneToMany(unique: result.string(row, 7) == "t")
            default:
                kind = .manyToMany(
                    junctionSchema: result.string(row, 8) ?? "", junction: result.string(row, 9) ?? "",
                    junctionLocal: SQL.parseTextArray(result.string(row, 10) ?? "{}"),
                    junctionRemote: SQL.parseTextArray(result.string(row, 11) ?? "{}"))
            }
            return TableRelationship(
                kind: kind, constraint: constraint, localConstraint: result.string(row, 2), schema: schema,
                table: table, localColumns: local, remoteColumns: remote)
        }
    }
}
