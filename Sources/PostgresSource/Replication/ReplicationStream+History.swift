import BridgeCore
import Foundation
import Logging

/// A failover or a restore changes the server's history under a running pipe: positions seen on
/// the old history mean nothing on the new one, and trusting them would skip real transactions
/// as "already delivered".
extension ReplicationStream {
    /// Compares what IDENTIFY_SYSTEM says now with what the stream last saw.
    func followServerHistory(timeline: String, serverWAL: LSN?) throws {
        let newTimeline = timeline != currentTimeline
        let behind = serverWAL.map { $0 < lastFlushSent } ?? false
        guard newTimeline || behind else { return }
        // The slot on this server (a failover slot, a Patroni permanent slot, one created after
        // the promotion) is where the server starts sending: nothing below it is skipped.
        let slotPosition = try catalogLookup("reading replication slot \(source.config.slot)") {
            try catalog().slot(source.config.slot)?.confirmedFlush
        }
        let reason =
            newTimeline
            ? "the server is on timeline \(timeline) now (was \(currentTimeline))"
            : "the server's WAL position \(serverWAL ?? .zero) is behind the position pgbridge confirmed (\(lastFlushSent))"
        logger.warning(
            Logger.Message(
                stringLiteral:
                    "\(reason): a failover or restore changed the server's history. Positions seen before are "
                    + "forgotten, so no transaction of the new history is skipped; streaming resumes at the slot's "
                    + "position \(slotPosition ?? .zero). Changes delivered from the old history after the point where "
                    + "the histories split may not exist on this server"))
        resetPositions(to: slotPosition ?? .zero, timeline: timeline)
    }

    /// Forgets every position of the previous history: what is skipped as delivered, what was
    /// confirmed, and the acknowledgements of batches still in flight from it.
    func resetPositions(to lsn: LSN, timeline: String) {
        assembler.resetPositions(to: lsn)
        lastFlushSent = lsn
        serverWalEnd = .zero
        currentTimeline = timeline
        let inFlight = lastPushedSequence
        source.shared.withLock { state in
            state.ackedLSN = lsn > .zero ? lsn : nil
            state.ignoreCheckpointsThrough = max(state.ignoreCheckpointsThrough, inFlight)
        }
        do {
            try checkpointStore.save(
                .init(lsn: lsn, systemID: prepared.systemID, slot: source.config.slot, timeline: timeline),
                resetting: true)
        } catch {
            logger.warning("\(error)")
        }
    }
}
