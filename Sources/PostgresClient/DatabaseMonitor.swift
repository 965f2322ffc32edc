import BridgeCore
import Foundation

/// What `/readyz` and `/metrics` ask PostgreSQL, from one connection of its own: answers are
/// cached for `maxAge` and at most one query runs at a time, so any number of (unauthenticated)
/// requests costs PostgreSQL one connection and one query every few seconds.
public actor DatabaseMonitor {
    public struct Snapshot: Sendable {
        /// Why PostgreSQL could not be asked; nil when it answered.
        public let error: String?
        /// Every replication slot; nil when PostgreSQL did not answer.
        public let slots: [ReplicationSlotRow]?
        let takenAt: ContinuousClock.Instant
    }

    /// The libpq connection, confined to its queue.
    private final class Connection {
        var connection: PGConnection?
    }

    private let postgres: PostgresConfig
    private let maxAge: Duration
    private let box = Confined(Connection(), label: "pgbridge-database-monitor")
    private var cached: Snapshot?
    private var inFlight: Task<Snapshot, Never>?

    public init(postgres: PostgresConfig, maxAge: Duration = .seconds(2)) {
        self.postgres = postgres
        self.maxAge = maxAge
    }

    /// The newest answer, at most `maxAge` old (the monitor's default when nil; authenticated
    /// callers may ask for a fresh one); callers that arrive while a query runs share it.
    public func snapshot(maxAge requested: Duration? = nil) async -> Snapshot {
        if let cached, ContinuousClock.now - cached.takenAt < requested ?? maxAge { return cached }
        if let inFlight { return await inFlight.value }
        let (box, postgres) = (box, postgres)
        let task = Task { await Self.query(box, postgres: postgres) }
        inFlight = task
        let snapshot = await task.value
        cached = snapshot
        inFlight = nil
        return snapshot
    }

    private static func query(_ box: Confined<Connection>, postgres: PostgresConfig) async -> Snapshot {
        do {
            let slots = try await box.run { box in
                do {
                    if box.connection == nil || box.connection?.isBroken == true {
                        box.connection = try PGConnection(
                            url: postgres.url, mode: .normal, applicationName: "pgbridge monitor", connectTimeout: 3,
                            tcpUserTimeout: .seconds(10))
                        try box.connection?.execute("SET statement_timeout = '5s'")
                    }
                    return try ReplicationSlotRow.all(on: box.connection!)
                } catch {
                    box.connection = nil
                    throw error
                }
            }
            return Snapshot(error: nil, slots: slots, takenAt: .now)
        } catch {
            return Snapshot(error: "\(error)", slots: nil, takenAt: .now)
        }
    }
}
