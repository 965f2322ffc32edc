import BridgeCore
import Foundation
import Logging
import Synchronization

/// Captures a pipe's tables from a logical replication slot (pgoutput) and hands out batches of
/// encoded events. The libpq loop runs on its own thread (see `ReplicationStream`).
public final class ReplicationSource: ChangeSource {
    /// State shared between the replication thread and the pipeline.
    struct Shared {
        var ackedSequence: UInt64 = 0
        var ackedLSN: LSN?
        /// Batches up to this sequence were read from a history the server no longer has (before
        /// a failover): their acknowledgements must not confirm positions on the new one.
        var ignoreCheckpointsThrough: UInt64 = 0
        var stopRequested = false
        /// The pipeline has consumed and acknowledged everything it will (final status may go).
        var finishRequested = false
        var threadExited = false
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
    let queue: BatchQueue
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
        var logger = logger
        logger[metadataKey: "pipe"] = "\(pipeName)"
        self.logger = logger
        self.queue = BatchQueue(capacity: options.queueCapacity)
    }

    public func start() async throws {
        let prepared = try await Blocking.run("pgbridge-setup") { [self] in try prepare() }
        let stream = try ReplicationStream(source: self, prepared: prepared)
        let thread = Thread { stream.run() }
        thread.name = "pgbridge-replication-\(pipeName)"
        thread.stackSize = 1 << 20
        thread.start()
        let monitor = SlotMonitor(pipe: pipeName, config: config, postgres: postgres, logger: logger)
        if monitor.isNeeded {
            let monitorThread = Thread { [self] in monitor.run { shared.withLock { $0.stopRequested } } }
            monitorThread.name = "pgbridge-slot-monitor-\(pipeName)"
            monitorThread.start()
        }
        if !prepared.hypertables.isEmpty {
            let reconciler = Thread { [self] in reconcileUntilStopped(hypertables: prepared.hypertables) }
            reconciler.name = "pgbridge-reconcile-\(pipeName)"
            reconciler.start()
        }
    }

    /// Every `reconcile_interval`, adds hypertable chunks missing from the publication and says so.
    private func reconcileUntilStopped(hypertables: [UInt32]) {
        var next = ContinuousClock.now + config.reconcileInterval
        while !shared.withLock({ $0.stopRequested }) {
            Thread.sleep(forTimeInterval: 0.1)
            guard ContinuousClock.now >= next else { continue }
            next = ContinuousClock.now + config.reconcileInterval
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

    public func next() async throws -> EventBatch? { try await queue.next() }

    public func nextIfReady() -> EventBatch? { queue.poll() }

    public func acknowledge(through sequence: UInt64, checkpoint: LSN?) {
        shared.withLock { state in
            state.ackedSequence = max(state.ackedSequence, sequence)
            if let checkpoint, sequence > state.ignoreCheckpointsThrough, checkpoint > (state.ackedLSN ?? .zero) {
                state.ackedLSN = checkpoint
            }
        }
    }

    public func requestStop() {
        shared.withLock { $0.stopRequested = true }
    }

    public func finish() async {
        shared.withLock {
            $0.stopRequested = true
            $0.finishRequested = true
        }
        queue.finish()
        while !shared.withLock({ $0.threadExited }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
