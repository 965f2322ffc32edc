import BridgeCore
import PostgresClient

extension CaptureCatalog {
    /// What the login role lacks for `pgbridge run` on a replication pipe, each with the SQL
    /// that fixes it: REPLICATION, creating the publication (CREATE on the database), adding
    /// tables to it (ownership), and SELECT for the initial snapshot.
    func privilegeProblems(
        tables: [Table], publicationName: String,
        publication: (exists: Bool, allTables: Bool, tables: Set<UInt32>), snapshot: Bool
    ) throws -> [String] {
        let role = try connection.execute(
            """
            SELECT current_user, rolsuper, rolreplication, current_database(),
                   has_database_privilege(current_database(), 'CREATE')
            FROM pg_roles WHERE rolname = current_user
            """)
        let user = role.string(0, 0) ?? "?"
        guard role.string(0, 1) != "t" else { return [] }  // a superuser may do all of it
        let database = role.string(0, 3) ?? "?"
        var problems: [String] = []
        if role.string(0, 2) != "t" {
            problems.append(
                "role \(user) lacks REPLICATION, which logical replication needs: ALTER ROLE \(SQL.identifier(user)) "
                    + "REPLICATION (as a superuser)")
        }
        let create =
            "CREATE PUBLICATION \(SQL.identifier(publicationName)) FOR TABLE "
            + tables.map(\.qualified).joined(separator: ", ")
        if !publication.exists && role.string(0, 4) != "t" {
            problems.append(
                "role \(user) may not create publication \(publicationName) in database \(database): "
                    + "GRANT CREATE ON DATABASE \(SQL.identifier(database)) TO \(SQL.identifier(user)), or create it in advance "
                    + "as a superuser: \(create)")
        }
        // One query for every table: ownership (publishing a table, by creating the publication
        // with it or adding it, needs its owner) and SELECT (the initial snapshot).
        let rights = try connection.execute(
            """
            SELECT oid, pg_has_role(current_user, relowner, 'USAGE'), has_table_privilege(oid, 'SELECT')
            FROM pg_class WHERE oid = ANY($1::oid[])
            """, ["{" + tables.map { String($0.oid) }.joined(separator: ",") + "}"])
        var owned: Set<UInt32> = []
        var readable: Set<UInt32> = []
        for row in 0..<rights.rowCount {
            guard let oid = rights.string(row, 0).flatMap({ UInt32($0) }) else { continue }
            if rights.string(row, 1) == "t" { owned.insert(oid) }
            if rights.string(row, 2) == "t" { readable.insert(oid) }
        }
        let toPublish =
            publication.exists
            ? (publication.allTables ? [] : tables.filter { !publication.tables.contains($0.oid) }) : tables
        for table in toPublish where !owned.contains(table.oid) {
            let fix =
                publication.exists
                ? "ALTER PUBLICATION \(SQL.identifier(publicationName)) ADD TABLE \(table.qualified)" : create
            problems.append(
                "role \(user) must own table \(table.display) to publish it in \(publicationName): run as its owner "
                    + "or a superuser: \(fix)")
        }
        if snapshot {
            for table in tables where !readable.contains(table.oid) {
                problems.append(
                    "role \(user) may not read table \(table.display) for the initial snapshot: "
                        + "GRANT SELECT ON \(table.qualified) TO \(SQL.identifier(user))")
            }
        }
        return problems
    }
}
