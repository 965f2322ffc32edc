import BridgeCore
import Dispatch
import Foundation
import PostgresClient
import PostgresSource

/// Stores dead-letter records as rows of `pgbridge.dead_letters` (`dead_letter: {kind: table}`).
/// libpq calls run on the sink's own queue, never on Swift's cooperative pool.
public final class TableDeadLetterSink: EventSink, @unchecked Sendable {
    // @unchecked Sendable: `connection` is only touched on `queue`.
    private let postgres: PostgresConfig
    private let queue = DispatchQueue(label: "pgbridge.dead-letter-table")
    private var connection: PGConnection?

    public init(postgres: PostgresConfig) {
        self.postgres = postgres
    }

    public var description: String { "table:pgbridge.dead_letters" }

    /// Refuses to start without `pgbridge.dead_letters` (or without INSERT on it): the first
    /// rejected event would otherwise be retried forever.
    public func open() async throws {
        try await onQueue { [self] in
            if let problem = try PgbridgeSchema.deadLetterTableProblem(try connected()) {
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
        return try await onQueue { [self] in
            let connection = try connected()
            do {
                try insert(all.map(\.json), connection)
                return .delivered
            } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
                // A record jsonb refuses (e.g. \u0000 from a NOTIFY payload): insert one by one,
                // so only the bad ones are refused.
                var rejected: [Rejection] = []
                for record in all {
                    do {
                        try insert([record.json], connection)
                    } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
                        rejected.append(
                            Rejection(
                                batch: record.batch, event: record.event, reason: "\(error)", isPermanent: true))
                    }
                }
                return DeliveryResult(rejected: rejected)
            } catch let error as PostgresError {
                if connection.isBroken { self.connection = nil }
                let hint =
                    error.sqlState == "42P01" ? ": create it with `pgbridge setup` or CREATE EXTENSION pgbridge" : ""
                throw SinkError(sink: description, message: "\(error)\(hint)")
            }
        }
    }

    private func insert(_ records: [String], _ connection: PGConnection) throws {
        let array = "[" + records.joined(separator: ",") + "]"
        try connection.execute(
            """
            INSERT INTO pgbridge.dead_letters (pipe, sink, reason, attempts, event)
            SELECT r->>'pipe', r->>'sink', r->>'reason', (r->>'attempts')::int, r->'event'
            FROM jsonb_array_elements($1::jsonb) AS r
            """, [array])
    }

    public func close() async {
        try? await onQueue { [self] in connection = nil }
    }

    private func connected() throws -> PGConnection {
        if let connection, !connection.isBroken { return connection }
        let connection = try PGConnection(url: postgres.url, mode: .normal, applicationName: "pgbridge dead letters")
        self.connection = connection
        return connection
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await queue.perform(body)
    }
}
