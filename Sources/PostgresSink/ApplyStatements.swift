/// The SQL that moves staged rows into one target table. Every statement reads the rows of one
/// table (`tbl`) within a seq range (`$1`..`$2`), so that a refused range can be split and
/// applied in halves.
enum ApplyStatements {
    static let createStage = """
        CREATE TEMP TABLE IF NOT EXISTS pgbridge_stage (
            seq int NOT NULL, tbl int NOT NULL, op text NOT NULL, key jsonb, before jsonb, after jsonb,
            uset int NOT NULL, oldkey jsonb, id text, commit_lsn pg_lsn, commit_time timestamptz
        ) ON COMMIT DELETE ROWS
        """

    static let copyStage = "COPY pg_temp.pgbridge_stage FROM STDIN"

    /// The value of column `column` for a row whose JSON is `json` and whose
    /// `jsonb_populate_record` is `record` (bytea arrives as base64 text).
    static func value(_ column: TargetTable.Column, json: String, record: String) -> String {
        let literal = "'" + column.name.replacingOccurrences(of: "'", with: "''") + "'"
        switch column.kind {
        case .plain: return "\(record).\(TargetTable.quote(column.name))"
        case .bytea: return "decode(\(json)->>\(literal), 'base64')"
        case .byteaArray:
            return "(SELECT array_agg(decode(x, 'base64')) FROM jsonb_array_elements_text(\(json)->\(literal)) x)"
        }
    }

    /// The last staged change of each key of table `tbl` within the range.
    static func lastPerKey(_ tbl: Int, _ columns: String) -> String {
        """
        (SELECT DISTINCT ON (key) \(columns) FROM pg_temp.pgbridge_stage
         WHERE tbl = \(tbl) AND seq BETWEEN $1 AND $2 ORDER BY key, seq DESC)
        """
    }

    static func keyMatch(_ target: TargetTable, key: [String], row: String, keyJSON: String, keyRecord: String)
        -> String
    {
        key.map { name in
            let column = target.column(name) ?? .init(name: name, type: "", kind: .plain)
            return "\(row).\(TargetTable.quote(name)) = \(value(column, json: keyJSON, record: keyRecord))"
        }.joined(separator: " AND ")
    }

    /// Deletes the keys whose last change is a delete.
    static func delete(_ target: TargetTable, tbl: Int, key: [String]) -> String {
        """
        DELETE FROM \(target.qualified) AS t
        USING \(lastPerKey(tbl, "op, key")) l, jsonb_populate_record(NULL::\(target.qualified), l.key) k
        WHERE l.op = 'delete' AND \(keyMatch(target, key: key, row: "t", keyJSON: "l.key", keyRecord: "k"))
        """
    }

    /// Upserts the keys whose last change is an insert, update or read with every column sent
    /// (`uset = 0`).
    static func upsert(_ target: TargetTable, tbl: Int, key: [String], columns: [TargetTable.Column]) -> String {
        let names = columns.map { TargetTable.quote($0.name) }.joined(separator: ", ")
        let values = columns.map { value($0, json: "l.after", record: "r") }.joined(separator: ", ")
        return """
            INSERT INTO \(target.qualified) AS t (\(names))
            SELECT \(values)
            FROM \(lastPerKey(tbl, "op, after, uset")) l, jsonb_populate_record(NULL::\(target.qualified), l.after) r
            WHERE l.op <> 'delete' AND l.uset = 0
            \(onConflict(key: key, columns: columns, unchanged: []))
            """
    }

    /// Upserts the keys whose last change is an update that left the TOAST columns `unchanged`
    /// out: their values come from the latest earlier change of the key in the range, else
    /// from the row of the old key (an update that changed the key), else the target keeps its
    /// own.
    static func upsertUnchanged(
        _ target: TargetTable, tbl: Int, key: [String], columns: [TargetTable.Column], unchanged: [String], uset: Int
    ) -> String {
        let names = columns.map { TargetTable.quote($0.name) }.joined(separator: ", ")
        let unchangedSet = Set(unchanged)
        let list = unchanged.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }.joined(separator: ", ")
        let values = columns.map { column -> String in
            let merged = value(column, json: "m.after", record: "r")
            guard unchangedSet.contains(column.name) else { return merged }
            let oldRow = keyMatch(target, key: key, row: "o", keyJSON: "l.oldkey", keyRecord: "ok")
            return """
                COALESCE(\(merged), (SELECT o.\(TargetTable.quote(column.name)) FROM \(target.qualified) o,
                    jsonb_populate_record(NULL::\(target.qualified), l.oldkey) ok WHERE \(oldRow)))
                """
        }.joined(separator: ", ")
        return """
            INSERT INTO \(target.qualified) AS t (\(names))
            SELECT \(values)
            FROM \(lastPerKey(tbl, "seq, op, key, after, uset, oldkey")) l
            CROSS JOIN LATERAL (SELECT coalesce((
                SELECT jsonb_object_agg(kv.k, kv.v ORDER BY e.seq)
                FROM pg_temp.pgbridge_stage e, jsonb_each(e.after) AS kv(k, v)
                WHERE e.tbl = \(tbl) AND e.seq BETWEEN $1 AND l.seq - 1 AND e.op <> 'delete'
                  AND (e.key = l.key OR e.key = l.oldkey) AND kv.k = ANY (ARRAY[\(list)]::text[])
            ), '{}'::jsonb) || l.after AS after) m,
            jsonb_populate_record(NULL::\(target.qualified), m.after) r
            WHERE l.op <> 'delete' AND l.uset = \(uset)
            \(onConflict(key: key, columns: columns, unchanged: unchangedSet))
            """
    }

    static func onConflict(key: [String], columns: [TargetTable.Column], unchanged: Set<String>) -> String {
        let keySet = Set(key)
        let updates = columns.filter { !keySet.contains($0.name) }.map { column in
            let name = TargetTable.quote(column.name)
            return unchanged.contains(column.name)
                ? "\(name) = COALESCE(EXCLUDED.\(name), t.\(name))" : "\(name) = EXCLUDED.\(name)"
        }
        let target = key.map(TargetTable.quote).joined(separator: ", ")
        guard !updates.isEmpty else { return "ON CONFLICT (\(target)) DO NOTHING" }
        return "ON CONFLICT (\(target)) DO UPDATE SET \(updates.joined(separator: ", "))"
    }

    static func truncate(_ target: TargetTable, cascade: Bool, restartIdentity: Bool) -> String {
        "TRUNCATE \(target.qualified)\(restartIdentity ? " RESTART IDENTITY" : "")\(cascade ? " CASCADE" : "")"
    }

    /// `append` with `columns: json`: one history row per event.
    static func appendJSON(_ target: TargetTable, tbl: Int) -> String {
        """
        INSERT INTO \(target.qualified) (op, id, commit_lsn, commit_time, before, after)
        SELECT op, id, commit_lsn, commit_time, before, after FROM pg_temp.pgbridge_stage
        WHERE tbl = \(tbl) AND seq BETWEEN $1 AND $2 ORDER BY seq
        """
    }

    /// `append` with `columns: flatten`: the row's own columns beside `_op`, `_id`, …
    static func appendFlat(_ target: TargetTable, tbl: Int, columns: [TargetTable.Column]) -> String {
        let names = columns.map { TargetTable.quote($0.name) }.joined(separator: ", ")
        let values = columns.map { value($0, json: "coalesce(s.after, s.before, s.key)", record: "r") }
        return """
            INSERT INTO \(target.qualified) (_op, _id, _commit_lsn, _commit_time\(names.isEmpty ? "" : ", " + names))
            SELECT s.op, s.id, s.commit_lsn, s.commit_time\(values.isEmpty ? "" : ", " + values.joined(separator: ", "))
            FROM pg_temp.pgbridge_stage s,
                 jsonb_populate_record(NULL::\(target.qualified), coalesce(s.after, s.before, s.key)) r
            WHERE s.tbl = \(tbl) AND s.seq BETWEEN $1 AND $2 ORDER BY s.seq
            """
    }

    static let appendMetadata: Set<String> = ["op", "id", "commit_lsn", "commit_time", "before", "after"]
    static let flatMetadata: Set<String> = ["_op", "_id", "_commit_lsn", "_commit_time"]
}
