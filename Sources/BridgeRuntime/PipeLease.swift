import BridgeCore
import Foundation
import Logging
import PostgresClient
import Synchronization

/// Ownership of one pipe among several pgbridge replicas: a session-level advisory lock, held on
/// a connection of its own for as long as the pipe runs here. When the owner dies, PostgreSQL
/// drops its connection and the lock with it, and a standby's next attempt takes the pipe over;
/// the slot's confirmed position says where streaming resumes.
public final class PipeLease: Sendable {
    /// The first key of pgbridge's advisory locks ("pgbr"); the second is `hashtext` of what the
    /// pipe holds: its slot (the unique resource), or its name for trigger-capture pipes.
    static let lockClass: Int32 = 0x7067_6272
    static let livenessInterval: Duration = .seconds(2)

    public struct Lost: Error, CustomStringConvertible {
        public let pipe: String
        public let reason: String
        public var description: String {
            "lost the ownership of pipe \(pipe) (\(reason)): it stops here so that another replica can take it over"
        }
    }

    public let pipe: String
    /// `pgbridge slot <slot>` or `pgbridge pipe <name>`.
    let lockKey: String
    let postgres: PostgresConfig
    let replicaID: String
    let pollInterval: Duration
    let logger: Logger
    /// The connection that holds the lock, confined to its queue (never on the cooperative pool).
    final class LockConnection {
        var connection: PGConnection?
    }

    private let lock = Confined(LockConnection(), label: "pgbridge.lease")

    public init(pipe: PipeConfig, postgres: PostgresConfig, ha: HAConfig, logger: Logger) {
        self.pipe = pipe.name
        self.lockKey = Self.lockKey(for: pipe)
        self.postgres = postgres
        self.replicaID = ha.replicaID
        self.pollInterval = ha.lockPollInterval
        self.logger = logger
    }

    /// Replicas exclude each other on the slot, whatever they call the pipe.
    public static func lockKey(for pipe: PipeConfig) -> String {
        if case .replication(let source) = pipe.source { return "pgbridge slot \(source.slot)" }
        return "pgbridge pipe \(pipe.name)"
    }
    public var applicationName: String { "pgbridge:\(replicaID)" }

    /// Waits until this replica owns the pipe (true), or `shouldStop` says to give up (false).
    /// `yielding`: wait five poll intervals first, so that a replica already standing by takes
    /// the pipe (after this replica lost its lock, its connection may be the unhealthy one).
    public func acquire(yielding: Bool = false, shouldStop: @escaping @Sendable () -> Bool) async throws -> Bool {
        if yielding {
            logger.info(
                "pipe \(pipe): this replica (\(replicaID)) waits \(pollInterval * 5) before it tries the lock again, so that a standby takes it over"
            )
            let until = ContinuousClock.now + pollInterval * 5
            while ContinuousClock.now < until && !shouldStop() {
                try await Task.sleep(for: min(.milliseconds(100), until - ContinuousClock.now))
            }
        }
        var announced = false
        var failures = 0
        while !shouldStop() {
            try Task.checkCancellation()
            do {
                if try await lock.run({ [self] held in try tryLock(held) }) {
                    logger.info("pipe \(pipe): this replica (\(replicaID)) owns it")
                    return true
                }
                failures = 0
                if !announced {
                    announced = true
                    let owner = (try? await Self.owner(lockKey: lockKey, postgres: postgres)) ?? nil
                    logger.info(
                        "pipe \(pipe): owned by \(owner.map { "replica \($0)" } ?? "another replica"); this replica (\(replicaID)) stands by"
                    )
                }
            } catch {
                failures += 1
                if failures == 1 { logger.warning("pipe \(pipe): cannot take the ownership lock: \(error) (retrying)") }
                drop()
            }
            try await Task.sleep(for: pollInterval)
        }
        return false
    }

    /// Returns (throwing `Lost`) when the lock's connection breaks; checks every 2 s.
    public func watch() async throws {
        while true {
            try await Task.sleep(for: Self.livenessInterval)
            do {
                try await lock.run { held in
                    guard let connection = held.connection, !connection.isBroken else {
                        throw PostgresError(.connectionFailed, "the lock's connection is closed")
                    }
                    try connection.execute("SELECT 1")
                }
            } catch {
                drop()
                throw Lost(pipe: pipe, reason: "its lock connection to PostgreSQL broke: \(error)")
            }
        }
    }

    /// Gives the pipe up (closing the connection releases the lock) and returns once the lock
    /// is released, so that a lease taken right after this one does not find it held.
    public func release() async {
        try? await lock.run { $0.connection = nil }
    }

    /// Closes the connection (after whatever runs on it now), which releases the lock.
    private func drop() {
        lock.enqueue { $0.connection = nil }
    }

    private func tryLock(_ held: LockConnection) throws -> Bool {
        if held.connection == nil || held.connection?.isBroken == true {
            held.connection = try PGConnection(url: postgres.url, mode: .normal, applicationName: applicationName)
        }
        let result = try held.connection!.execute(
            "SELECT pg_try_advisory_lock($1::int, hashtext($2))", [String(Self.lockClass), lockKey])
        return result.string(0, 0) == "t"
    }

    /// The replica that holds `lockKey` now (from its connection's `application_name`), if any.
    public static func owner(lockKey: String, postgres: PostgresConfig) async throws -> String? {
        try await Blocking.run {
            let connection = try PGConnection(url: postgres.url, mode: .normal, connectTimeout: 5)
            let result = try connection.execute(
                """
                SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                  AND l.classid = ($1::int)::oid AND l.objid = (hashtext($2))::oid
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """, [String(lockClass), lockKey])
            guard result.rowCount > 0, let name = result.string(0, 0) else { return nil }
            return name.hasPrefix("pgbridge:") ? String(name.dropFirst("pgbridge:".count)) : name
        }
    }
}
