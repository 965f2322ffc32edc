import PostgresClient

/// What exists of pgbridge's own SQL objects (`pgbridge setup`) in a database, for `check` and
/// for the runtime pieces that store in them.
public enum PgbridgeSchema {
    /// Why `dead_letter: {kind: table}` cannot work on this database, or nil.
    public static func deadLetterTableProblem(_ connection: PGConnection) throws -> String? {
        let result = try connection.execute(
            """
            SELECT to_regclass('pgbridge.dead_letters') IS NOT NULL,
                   to_regclass('pgbridge.dead_letters') IS NOT NULL
                     AND has_table_privilege('pgbridge.dead_letters', 'INSERT'),
                   current_user
            """)
        if result.string(0, 0) != "t" {
            return "dead_letter: {kind: table} needs the table pgbridge.dead_letters: run `pgbridge setup` "
                + "(or CREATE EXTENSION pgbridge) in this database"
        }
        if result.string(0, 1) != "t" {
            let role = result.string(0, 2) ?? "?"
            return "dead_letter: {kind: table}: role \(role)"
                + " may not insert into pgbridge.dead_letters: GRANT INSERT ON pgbridge.dead_letters TO \(role)"
        }
        return nil
    }

    /// Whether `pgbridge.pipes` (the pipes created through the HTTP API) exists.
    public static func pipesTableExists(_ connection: PGConnection) throws -> Bool {
        try connection.execute("SELECT to_regclass('pgbridge.pipes') IS NOT NULL").string(0, 0) == "t"
    }
}
