/// The whole configuration file (see docs/configuration.md for every key and default).
public struct BridgeConfig: Sendable {
    public var postgres: PostgresConfig
    /// Where pipes keep their local state (last delivered commit LSN, spill files).
    public var stateDirectory: String
    public var pipes: [PipeConfig]
    /// The HTTP API; nil = not served.
    public var api: APIConfig?
    /// The PostgreSQL wire protocol for postgres_fdw; nil = not served.
    public var wire: WireConfig?
    /// Several replicas, one owner per pipe; nil = this process runs every pipe itself.
    public var ha: HAConfig?

    public static let defaultStateDirectory = "./pgbridge-state"

    public init(
        postgres: PostgresConfig, stateDirectory: String = defaultStateDirectory, pipes: [PipeConfig],
        api: APIConfig? = nil, wire: WireConfig? = nil, ha: HAConfig? = nil
    ) {
        self.ha = ha
        self.postgres = postgres
        self.stateDirectory = stateDirectory
        self.pipes = pipes
        self.api = api
        self.wire = wire
    }
}

public struct PostgresConfig: Sendable {
    /// A libpq connection URI or key/value string. May hold a password: never log it as is
    /// (see `redactedURL`).
    public var url: String

    public init(url: String) { self.url = url }

    /// The URL with any password replaced by `***`, safe for logs and errors.
    public var redactedURL: String { Redaction.redactConnectionString(url) }
}

public struct PipeConfig: Sendable {
    public var name: String
    public var source: SourceConfig
    public var format: EventFormat
    public var sinks: [SinkConfig]
    /// Where rejected events go; nil = `<state_dir>/<pipe>.dead_letters.jsonl`.
    public var deadLetter: DeadLetterConfig?
    public var processors: [ProcessorConfig]

    public init(
        name: String, source: SourceConfig, format: EventFormat = .native, sinks: [SinkConfig],
        deadLetter: DeadLetterConfig? = nil, processors: [ProcessorConfig] = []
    ) {
        self.name = name
        self.source = source
        self.format = format
        self.sinks = sinks
        self.deadLetter = deadLetter
        self.processors = processors
    }
}

public enum EventFormat: String, Sendable, CaseIterable {
    case native
    /// Debezium's change-event envelope (as with `value.converter.schemas.enable=false`).
    case debezium
    /// CloudEvents 1.0 (structured JSON; binary mode on HTTP and Kafka sinks with `content_mode: binary`).
    case cloudevents
}

public enum SourceConfig: Sendable {
    case replication(ReplicationSourceConfig)
    case outbox(OutboxSourceConfig)
    case notify(NotifySourceConfig)
    /// A broker's messages (`kind: kafka`, `rabbitmq`, `redis`), made by the kind's registration.
    case message(MessageSourceConfig)
}

/// Trigger capture through `pgbridge.outbox` (see docs/trigger-capture.md).
public struct OutboxSourceConfig: Sendable {
    public var channels: [String]
    /// Outbox rows claimed per transaction.
    public var batchRows: Int
    /// How often the outbox is drained without a NOTIFY (missed wake-ups, other replicas' leftovers).
    public var pollInterval: Duration

    public init(channels: [String], batchRows: Int = 1000, pollInterval: Duration = .seconds(5)) {
        self.channels = channels
        self.batchRows = batchRows
        self.pollInterval = pollInterval
    }
}

/// Raw LISTEN channels (best effort: what NOTIFY itself guarantees).
public struct NotifySourceConfig: Sendable {
    public var channels: [String]

    public init(channels: [String]) { self.channels = channels }
}

public struct ReplicationSourceConfig: Sendable {
    /// The slot and publication of pipe `pipe` when the configuration names none.
    public static func defaultName(pipe: String) -> String { "pgbridge_\(pipe)" }

    public var tables: [TablePattern]
    public var slot: String
    public var publication: String
    public var snapshot: SnapshotMode
    /// How often a standby status update is sent even when nothing changed (default 10 s;
    /// must stay well under the server's `wal_sender_timeout`).
    public var statusInterval: Duration
    /// Whether logical decoding messages (`pg_logical_emit_message`) become `message` events.
    public var messages: Bool
    /// How long a slot held by another process is retried before pgbridge gives up (exit 3).
    public var slotBusyTimeout: Duration
    /// Rows of continuous-aggregate materialisation hypertables: reported as the view, or dropped.
    public var continuousAggregates: ContinuousAggregateMode
    /// How often hypertable chunks missing from the publication are looked for and added.
    public var reconcileInterval: Duration
    public var snapshotRange: SnapshotRange?
    /// Rows fetched per round trip while snapshotting (memory stays bounded by this).
    public var snapshotBatchRows: Int
    /// How often a heartbeat (`pg_logical_emit_message`) is written so the slot advances while
    /// the captured tables are quiet; zero = never.
    public var heartbeatInterval: Duration
    /// Slot lag (bytes of WAL the slot retains) above which pgbridge logs an error every minute
    /// and `/readyz` fails; nil = no limit.
    public var maxLagBytes: Int64?
    /// No message from the server for this long means the replication connection is lost
    /// (a silent peer: failover, a dropped NAT entry, a firewall); also the TCP user timeout.
    /// Half-way, pgbridge asks the server for a reply.
    public var receiveTimeout: Duration
    /// What to do when the pipe's slot is gone although it existed (a failover to a server
    /// without it, someone dropped it): stop with an error, or re-read the tables.
    public var onSlotLost: SlotLostAction

    public init(
        tables: [TablePattern], slot: String, publication: String, snapshot: SnapshotMode = .never,
        statusInterval: Duration = .seconds(10), messages: Bool = true, slotBusyTimeout: Duration = .seconds(30),
        continuousAggregates: ContinuousAggregateMode = .view, reconcileInterval: Duration = .seconds(30),
        snapshotRange: SnapshotRange? = nil, snapshotBatchRows: Int = 5000, heartbeatInterval: Duration = .seconds(30),
        maxLagBytes: Int64? = nil, receiveTimeout: Duration = .seconds(60), onSlotLost: SlotLostAction = .error
    ) {
        self.receiveTimeout = receiveTimeout
        self.onSlotLost = onSlotLost
        self.heartbeatInterval = heartbeatInterval
        self.maxLagBytes = maxLagBytes
        self.snapshotRange = snapshotRange
        self.snapshotBatchRows = snapshotBatchRows
        self.slotBusyTimeout = slotBusyTimeout
        self.continuousAggregates = continuousAggregates
        self.reconcileInterval = reconcileInterval
        self.tables = tables
        self.slot = slot
        self.publication = publication
        self.snapshot = snapshot
        self.statusInterval = statusInterval
        self.messages = messages
    }
}

public enum SlotLostAction: String, Sendable, CaseIterable {
    /// Stop the pipe with an error that says what happened and how to heal it.
    case error
    /// Create the slot again with an exported snapshot and re-read the captured tables (as
    /// `snapshot: initial` does), so consumers converge.
    case resnapshot
}

public enum ContinuousAggregateMode: String, Sendable, CaseIterable {
    /// Report materialisation rows under the continuous aggregate's view name.
    case view
    /// Do not report them.
    case drop
}

public enum SnapshotMode: String, Sendable {
    case never
    /// Read every captured table once, consistently with the slot, before streaming.
    case initial
}

/// Bounds the initial snapshot of hypertables to a time range (`snapshot_range`).
public struct SnapshotRange: Sendable, Equatable {
    /// Inclusive lower bound, as PostgreSQL timestamp text (nil = unbounded).
    public var start: String?
    /// Exclusive upper bound (nil = unbounded).
    public var end: String?
    /// The time column; by default the hypertable's time dimension from TimescaleDB's catalog.
    public var column: String?

    public init(start: String? = nil, end: String? = nil, column: String? = nil) {
        self.start = start
        self.end = end
        self.column = column
    }
}

/// `schema.table`, `schema.*` or `table` (schema `public`). Quoted parts keep their case.
public struct TablePattern: Sendable, Hashable, CustomStringConvertible {
    public var schema: String
    /// nil = every table of the schema.
    public var table: String?

    public init(schema: String, table: String?) {
        self.schema = schema
        self.table = table
    }

    public var description: String { "\(schema).\(table ?? "*")" }
}
