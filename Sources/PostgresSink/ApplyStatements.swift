import PostgresClient

/// The SQL that moves one table's staged rows into the target. The stage table holds `seq, op,
/// uset, oldkey` and the staged columns with the target's types; every statement reads the rows
/// of a seq range (`$1`..`$2`), so that a refused range can be split and applied in halves.
struct ApplyStatements {
    let target: TargetTable
    /// The stage table (temporary, emptied at commit).
    let stage: String
    let columns: [TargetTable.Column]
    let key: [String]
    /// Some key occurs twice in the delivery: only its last change is applied.
    let repeatsKeys: Bool

    static func createStage(_ name: String, columns: [TargetTable.Column]) -> String {
        let definitions = columns.map { "\(SQL.identifier($0.name)) \($0.stageType)" }
        return """
            CREATE TEMP TABLE IF NOT EXISTS \(name) (seq int NOT NULL, op "char" NOT NULL, uset int NOT NULL,
                oldkey jsonb\(definitions.isEmpty ? "" : ", " + definitions.joined(separator: ", "))) ON COMMIT DELETE ROWS
            """
    }

    static func copy(into table: String, columns: [String], binary: Bool = false) -> String {
        "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN" + (binary ? " WITH (FORMAT binary)" : "")
    }

    var names: String { columns.map { SQL.identifier($0.name) }.joined(separator: ", ") }
    var keyList: String { key.map(SQL.identifier).joined(separator: ", ") }

    /// The last staged change of each key within the range.
    var last: String {
        guard repeatsKeys else { return "(SELECT * FROM \(stage) WHERE seq BETWEEN $1 AND $2)" }
        return """
            (SELECT DISTINCT ON (\(keyList)) * FROM \(stage) WHERE seq BETWEEN $1 AND $2
             ORDER BY \(keyList), seq DESC)
            """
    }

    func keyEquals(_ left: String, _ right: String) -> String {
        key.map { "\(left).\(SQL.identifier($0)) = \(right).\(SQL.identifier($0))" }.joined(separator: " AND ")
    }

    /// Deletes the keys whose last change is a delete.
    var delete: String {
        "DELETE FROM \(target.qualified) AS t USING \(last) l WHERE l.op = 'd' AND \(keyEquals("t", "l"))"
    }

    /// Upserts the keys whose last change sent every column.
    var upsert: String {
        """
        INSERT INTO \(target.qualified) AS t (\(names))
        SELECT \(columns.map { "l.\(SQL.identifier($0.name))" }.joined(separator: ", ")) FROM \(last) l
        WHERE l.op <> 'd' AND l.uset = 0
        \(onConflict(unchanged: []))
        """
    }

    /// Upserts the keys whose last change is an update that left the TOAST columns `unchanged`
    /// out (set `uset`; `containing[c]` lists the sets that leave column c out). Their values
    /// come from the latest earlier change of the key in the range that sent them (of the old
    /// key, for an update that changed the key: earlier rows of the new key belong to another
    /// row), else from the old key's row, else the target keeps its own.
    func upsertUnchanged(uset: Int, unchanged: Set<String>, containing: [String: [Int]]) -> String {
        let values = columns.map { column -> String in
            let name = SQL.identifier(column.name)
            guard unchanged.contains(column.name) else { return "l.\(name)" }
            let excluded = (containing[column.name] ?? [uset]).map(String.init).joined(separator: ", ")
            return """
                COALESCE(
                  (SELECT e.\(name) FROM \(stage) e WHERE e.seq BETWEEN $1 AND l.seq - 1 AND e.op <> 'd'
                     AND e.uset NOT IN (\(excluded))
                     AND CASE WHEN l.oldkey IS NULL THEN \(keyEquals("e", "l")) ELSE \(keyEquals("e", "ok")) END
                   ORDER BY e.seq DESC LIMIT 1),
                  (SELECT o.\(name) FROM \(target.qualified) o WHERE \(keyEquals("o", "ok"))))
                """
        }
        return """
            INSERT INTO \(target.qualified) AS t (\(names))
            SELECT \(values.joined(separator: ", "))
            FROM \(last) l LEFT JOIN LATERAL jsonb_populate_record(NULL::\(target.qualified), l.oldkey) ok ON true
            WHERE l.op <> 'd' AND l.uset = \(uset)
            \(onConflict(unchanged: unchanged))
            """
    }

    func onConflict(unchanged: Set<String>) -> String {
        let keySet = Set(key)
        let updates = columns.filter { !keySet.contains($0.name) }.map { column in
            let name = SQL.identifier(column.name)
            return unchanged.contains(column.name)
                ? "\(name) = COALESCE(EXCLUDED.\(name), t.\(name))" : "\(name) = EXCLUDED.\(name)"
        }
        guard !updates.isEmpty else { return "ON CONFLICT (\(keyList)) DO NOTHING" }
        return "ON CONFLICT (\(keyList)) DO UPDATE SET \(updates.joined(separator: ", "))"
    }

    static func truncate(_ target: TargetTable, cascade: Bool, restartIdentity: Bool) -> String {
        "TRUNCATE \(target.qualified)\(restartIdentity ? " RESTART IDENTITY" : "")\(cascade ? " CASCADE" : "")"
    }

    static let appendMetadata = ["op", "id", "commit_lsn", "commit_time"]
    static let appendJSON = appendMetadata + ["before", "after"]
    static let flatMetadata = ["_op", "_id", "_commit_lsn", "_commit_time"]
}
