import BridgeCore
import Foundation
import PostgresClient
import PostgresSource

/// Stores dead-letter records as rows of `pgbridge.dead_letters` (`dead_letter: {kind: table}`),
/// through one `SQLSession` (libpq calls on its queue, never on Swift's cooperative pool).
public final class TableDeadLetterSink: EventSink {
    private let session: SQLSession

    public init(postgres: PostgresConfig) {
        session = SQLSession(
            postgres: postgres, label: "pgbridge.dead-letter-table", applicationName: "pgbridge dead letters")
    }

    public var description: String { "table:pgbridge.dead_letters" }

    /// Refuses to start without `pgbridge.dead_letters` (or without INSERT on it): the first
    /// rejected event would otherwise be retried forever.
    public func open() async throws {
        try await session.run { sql in
            if let problem = try PgbridgeSchema.deadLetterTableProblem(sql.connection) {
                throw PostgresError(.prerequisite, problem, retriable: false)
            }
        }
    }

    public func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
        var records: [(batch: Int, event: Int, json: String)] = []
        for (b, batch) in batches.enumerated() {
            for e in batch.eventEnds.indices {
                records.append((b, e, String(decoding: batch.event(at: e), as: UTF8.self)))
            }
        }
        let all = records
        let description = description
        return try await session.run { sql in
            do {
                try Self.insert(all.map(\.json), sql)
                return .delivered
            } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
                // A record jsonb refuses (e.g. \u0000 from a NOTIFY payload): insert one by one,
                // so only the bad ones are refused.
                var rejected: [Rejection] = []
                for record in all {
                    do {
                        try Self.insert([record.json], sql)
                    } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
                        rejected.append(
                            Rejection(
                                batch: record.batch, event: record.event, reason: "\(error)", isPermanent: true))
                    }
                }
                return DeliveryResult(rejected: rejected)
            } catch let error as PostgresError {
                // A broken connection is replaced by the session on the next delivery.
                let hint =
                    error.sqlState == "42P01" ? ": create it with `pgbridge setup` or CREATE EXTENSION pgbridge" : ""
                throw SinkError(sink: description, message: "\(error)\(hint)")
            }
        }
    }

    private static func insert(_ records: [String], _ sql: SQLConnection) throws {
        let array = "[" + records.joined(separator: ",") + "]"
        try sql.execute(
            """
            INSERT INTO pgbridge.dead_letters (pipe, sink, reason, attempts, event)
            SELECT r->>'pipe', r->>'sink', r->>'reason', (r->>'attempts')::int, r->'event'
            FROM jsonb_array_elements($1::jsonb) AS r
            """, [array])
    }

    public func close() async {
        session.close()
    }
}
