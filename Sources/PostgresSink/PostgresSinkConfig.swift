import BridgeCore

/// `kind: postgres`: applies change events to tables of another PostgreSQL (or TimescaleDB)
/// database, exactly once (docs/sinks.md#postgresql).
public struct PostgresSinkConfig: SinkSettings {
    public enum Mode: String, Sendable, CaseIterable {
        /// The target mirrors the source by key: upserts, deletes, truncates.
        case apply
        /// Every event becomes one row of a history table.
        case append
    }

    /// The columns of an `append` table.
    public enum AppendColumns: String, Sendable, CaseIterable {
        /// `op, id, commit_lsn, commit_time, before jsonb, after jsonb`.
        case json
        /// `_op, _id, _commit_lsn, _commit_time` and the row's own columns.
        case flatten
    }

    public enum OnChunkDropped: String, Sendable, CaseIterable {
        /// Retention on the source leaves the target's rows (logged once per hypertable).
        case ignore
        /// `drop_chunks` on the target for the same range: mirrored retention.
        case drop
    }

    public enum OnNewColumn: String, Sendable, CaseIterable {
        /// Events with a column the target lacks go to the dead-letter target, with the fix.
        case deadLetter = "dead_letter"
        /// `ALTER TABLE … ADD COLUMN` with the source column's type.
        case add
    }

    /// How new rows are copied into a target table (`COPY … FORMAT`).
    public enum CopyFormat: String, Sendable, CaseIterable {
        /// The values' text: the target's input functions read them.
        case text
        /// Each value in its type's binary form (integers, floats, booleans, text, json/jsonb,
        /// timestamps, uuid, and domains over text types): the target parses nothing. Tables
        /// with other types, and values only a text input reads, still go as text.
        case binary
    }

    /// A libpq URI of the target database. Never logged as is.
    public var url: String
    /// The target table per event (default `{schema}.{table}`).
    public var table: NameTemplate
    public var mode = Mode.apply
    public var columns = AppendColumns.json
    /// Creates missing target tables like the source's (hypertables included).
    public var createTables = false
    public var onChunkDropped = OnChunkDropped.ignore
    public var onNewColumn = OnNewColumn.deadLetter
    public var copyFormat = CopyFormat.text

    public init(url: String, table: NameTemplate) {
        self.url = url
        self.table = table
    }

    /// The URL with its password replaced, for logs and errors.
    public var redactedURL: String { Redaction.redactConnectionString(url) }
}
