import BridgeCore
import Foundation
import Logging
import Synchronization

/// Captures a pipe's tables from a logical replication slot (pgoutput) and hands out batches of
/// encoded events. The libpq loop runs on its own thread (see `ReplicationStream`).
public final class ReplicationSource: ThreadedChangeSource {
    /// Positions shared between the replication thread and the pipeline (the acknowledged
    /// sequence, the stop and the exit are the `SourceThread`'s).
    struct Shared {
        var ackedLSN: LSN?
        /// Batches up to this sequence were read from a history the server no longer has (before
        /// a failover): their acknowledgements must not confirm positions on the new one.
        var ignoreCheckpointsThrough: UInt64 = 0
    }

    public struct Options: Sendable {
        /// Batches waiting for the sinks (each up to `maxBatchBytes`).
        public var queueCapacity = 4
        public var maxBatchBytes = 1 << 20
        public var maxReconnectDelay: Duration = .seconds(10)
        /// How long the stream may wait for the sinks without reading before it closes the
        /// replication connection (see `ReplicationStream.checkReadPause`).
        public var maxReadPause: Duration = .seconds(10)

        public init() {}
    }

    let pipeName: String
    let config: ReplicationSourceConfig
    let postgres: PostgresConfig
    let stateDirectory: String
    let options: Options
    let logger: Logger
    public let thread: SourceThread
    let shared = Mutex(Shared())

    public init(
        pipeName: String, config: ReplicationSourceConfig, postgres: PostgresConfig, stateDirectory: String,
        options: Options = Options(), logger: Logger
    ) {
        self.pipeName = pipeName
        self.config = config
        self.postgres = postgres
        self.stateDirectory = stateDirectory
        self.options = options
        self.logger = logger.forPipe(pipeName)
        thread = SourceThread(name: "pgbridge-replication-\(pipeName)", queueCapacity: options.queueCapacity)
    }

    public func start() async throws {
        let prepared = try await Blocking.run { [self] in try prepare() }
        let stream = try ReplicationStream(source: self, prepared: prepared)
        thread.start(stackSize: 1 << 20) { stream.run() }
        let monitor = SlotMonitor(pipe: pipeName, config: config, postgres: postgres, logger: logger)
        if monitor.isNeeded {
            thread.startCompanion("slot-monitor") { [thread] in monitor.run(on: thread) }
        }
        if !prepared.hypertables.isEmpty {
            thread.startCompanion("reconcile") { [self] in reconcileUntilStopped(hypertables: prepared.hypertables) }
        }
    }

    /// Every `reconcile_interval`, adds hypertable chunks missing from the publication and says so.
    private func reconcileUntilStopped(hypertables: [UInt32]) {
        while thread.pause(config.reconcileInterval) {
            do {
                let added = try reconcileChunks(hypertables: hypertables)
                if !added.isEmpty {
                    logger.warning(
                        Logger.Message(
                            stringLiteral:
                                "added chunks missing from publication \(config.publication): \(added.joined(separator: ", ")). "
                                + "Rows written to them before now were not captured; set "
                                + "timescaledb.enable_chunk_auto_publication = on for the database to avoid this"))
                }
            } catch {
                logger.warning("publication reconcile failed (retrying in \(config.reconcileInterval)): \(error)")
            }
        }
    }

    /// The checkpoint is recorded before the sequence, so that the replication thread, which
    /// reads the sequence first, never sees a sequence newer than the checkpoint that came with it.
    public func acknowledge(through sequence: UInt64, checkpoint: LSN?) {
        shared.withLock { state in
            if let checkpoint, sequence > state.ignoreCheckpointsThrough, checkpoint > (state.ackedLSN ?? .zero) {
                state.ackedLSN = checkpoint
            }
        }
        thread.acknowledge(through: sequence)
    }
}
