import BridgeCore

extension PipeRunner {
    /// `first` and the batches the source has ready after it, up to the group limits, with the
    /// pipe's processors applied.
    func prepareGroup(startingWith first: EventBatch) -> [EventBatch] {
        var group = [first]
        var bytes = first.bytes.count
        while group.count < options.maxGroupBatches, bytes < options.maxGroupBytes, let more = source.nextIfReady() {
            group.append(more)
            bytes += more.bytes.count
        }
        sourceLatency.record(group)
        if let transform { group = group.map(transform.apply) }
        return group
    }

    /// Delivers `group` and meanwhile prepares the next group when the source has one ready now:
    /// the processors' work overlaps the sinks' round trips. It never waits for the source, so
    /// a failing delivery is reported as soon as it fails. A prepared group that is not delivered
    /// (the delivery failed) was never acknowledged: the source reads it again.
    func deliverPreparingNext(_ group: [EventBatch]) async throws -> [EventBatch]? {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { [self] in try await deliver(group) }
            let next = source.nextIfReady().map { prepareGroup(startingWith: $0) }
            try await tasks.waitForAll()
            return next
        }
    }
}
