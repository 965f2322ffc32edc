import BridgeCore
import Foundation
import PostgresClient

/// Read-only checks and slot administration for the CLI (`pgbridge check`, `pgbridge slots`).
public enum DatabaseAdmin {
    public typealias SlotRow = ReplicationSlotRow

    /// What `pgbridge check` found for one pipe: problems (one line each) and notes.
    public struct PipeReport: Sendable {
        public var problems: [String] = []
        public var notes: [String] = []

        public init(problems: [String] = [], notes: [String] = []) {
            self.problems = problems
            self.notes = notes
        }
    }

    /// What `pgbridge check` finds for one pipe, on one connection.
    public static func checkPipe(
        _ pipe: PipeConfig, index: Int, postgres: PostgresConfig
    ) async throws -> PipeReport {
        try await Blocking.run {
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            var report: PipeReport
            switch pipe.source {
            case .replication(let source):
                report = try checkReplication(source, index: index, connection: connection)
            case .outbox:
                report = PipeReport()
                if try connection.execute("SELECT to_regclass('pgbridge.outbox') IS NOT NULL").string(0, 0) != "t" {
                    report.problems.append(
                        "table pgbridge.outbox does not exist: run `pgbridge setup` (or CREATE EXTENSION pgbridge), "
                            + "then SELECT pgbridge.watch('schema.table') for each table to capture")
                }
            case .notify:
                report = PipeReport(notes: [
                    "notify pipes are best effort: notifications sent while pgbridge is away are lost"
                ])
            case .message(let source):
                report = PipeReport(notes: [
                    "\(source.kind) source: messages are checked when the pipe reads them (bad ones are dead-lettered)"
                ])
            }
            if case .table = pipe.deadLetter, let problem = try PgbridgeSchema.deadLetterTableProblem(connection) {
                report.problems.append(problem)
            }
            return report
        }
    }

    private static func checkReplication(
        _ source: ReplicationSourceConfig, index: Int, connection: PGConnection
    ) throws -> PipeReport {
        var report = PipeReport()
        let catalog = CaptureCatalog(connection: connection)
        let walLevel = try catalog.walLevel()
        if walLevel != "logical" {
            report.problems.append(
                "wal_level is '\(walLevel)' but capture needs 'logical': run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"
            )
        }
        let database = try catalog.currentDatabase()
        let (tables, missing) = try catalog.resolve(source.tables, configPath: "pipes[\(index)].source.tables")
        report.problems += missing
        report.problems += CaptureCatalog.replicaIdentityProblems(tables)
        let publication = try catalog.publication(source.publication)
        report.problems += try catalog.privilegeProblems(
            tables: tables, publicationName: source.publication, publication: publication,
            snapshot: source.snapshot == .initial)
        let timescale = try catalog.timescaleState()
        let hypertables = try catalog.hypertables(among: tables, state: timescale)
        if publication.exists && !publication.allTables {
            for hypertable in tables where hypertables.contains(hypertable.oid) {
                let absent = try catalog.chunks(of: hypertable.oid).filter { !publication.tables.contains($0.oid) }
                guard !absent.isEmpty else { continue }
                report.problems.append(
                    "hypertable \(hypertable.display) has \(absent.count) chunk(s) missing from publication "
                        + "\(source.publication) (\(absent.prefix(5).map(\.display).joined(separator: ", "))"
                        + "\(absent.count > 5 ? ", …" : "")): their rows are not captured. pgbridge run adds them; set "
                        + "timescaledb.enable_chunk_auto_publication = on for the database so new chunks are published at once"
                )
            }
        }
        if !publication.exists {
            report.notes.append("publication \(source.publication) does not exist yet: pgbridge run creates it")
        } else if !publication.allTables {
            let absent = tables.filter { !publication.tables.contains($0.oid) }.map(\.display)
            if !absent.isEmpty {
                report.notes.append(
                    "publication \(source.publication) lacks \(absent.joined(separator: ", ")): pgbridge run adds them"
                )
            }
        }
        if let slot = try catalog.slot(source.slot) {
            report.problems += CaptureCatalog.slotProblems(slot, database: database)
            if slot.active {
                report.notes.append(
                    "replication slot \(source.slot) is active (PID \(slot.activePID.map(String.init) ?? "?")): another process is streaming from it"
                )
            }
        } else {
            report.notes.append("replication slot \(source.slot) does not exist yet: pgbridge run creates it")
        }
        return report
    }

    public static func listSlots(postgres: PostgresConfig) async throws -> [SlotRow] {
        try await Blocking.run {
            try ReplicationSlotRow.all(on: PGConnection(url: postgres.url, mode: .normal))
        }
    }

    /// Drops a slot; refuses (with the holder's PID) when a process is streaming from it.
    public static func dropSlot(_ name: String, postgres: PostgresConfig) async throws {
        try await Blocking.run {
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            let catalog = CaptureCatalog(connection: connection)
            guard let slot = try catalog.slot(name) else {
                throw PostgresError(
                    .prerequisite, "replication slot \(name) does not exist: `pgbridge slots` lists the slots")
            }
            if slot.active {
                throw PostgresError(.slotBusy, SlotAdvice.busy(name, pid: slot.activePID))
            }
            do {
                try connection.execute("SELECT pg_drop_replication_slot($1)", [name])
            } catch let error as PostgresError where error.sqlState == "55006" {
                throw PostgresError(.slotBusy, SlotAdvice.busy(name, pid: nil))
            }
        }
    }
}

extension DatabaseAdmin {
    /// What the `api` section will miss in this database, for `check`: the table of pipes
    /// created through the API, and (with the REST proxy) what `X-Commit-LSN` needs.
    public static func apiNotes(postgres: PostgresConfig, restProxy: Bool) async throws -> [String] {
        try await Blocking.run {
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            var notes: [String] = []
            if try !PgbridgeSchema.pipesTableExists(connection) {
                notes.append(
                    "table pgbridge.pipes does not exist: pipes created through the HTTP API cannot be saved "
                        + "(POST /v1/pipes fails) until `pgbridge setup` runs in this database")
            }
            guard restProxy else { return notes }
            let walinspect = try connection.execute(
                """
                SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'),
                       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                         OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')
                """)
            if walinspect.string(0, 0) != "t" {
                notes.append(
                    "writes through the REST proxy will carry no X-Commit-LSN: pg_walinspect is not installed "
                        + "(run `pgbridge setup` as a superuser)")
            } else if walinspect.string(0, 1) != "t" {
                notes.append(
                    "writes through the REST proxy will carry no X-Commit-LSN: the login role is not a member of "
                        + "pg_read_server_files (GRANT pg_read_server_files TO it)")
            }
            return notes
        }
    }
}
