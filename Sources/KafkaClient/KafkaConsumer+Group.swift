import BridgeCore
import CRdKafka

/// Consumer groups: what a Kafka source reads with. Join with `group.id` (and
/// `enable.auto.commit=false`, so that nothing is committed before the sinks confirmed) in the
/// consumer's properties, `subscribe`, `poll`, and `commit` the positions that were delivered.
/// librdkafka assigns the partitions on rebalances by itself; a commit for a partition this
/// consumer lost in a rebalance fails and is not applied.
extension KafkaConsumer {
    /// Subscribes to `topics`: names, or patterns starting with `^` (regular expressions).
    public func subscribe(_ topics: [String]) throws(Failure) {
        let rk = try handle()
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let error = rd_kafka_subscribe(rk, list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw Failure(
                description:
                    "\(description): cannot subscribe to \(topics): \(String(cString: rd_kafka_err2str(error)))")
        }
    }

    /// Commits, and waits for the group coordinator to store, the next offset to read of each
    /// partition (the offset of the last delivered message + 1).
    public func commit(_ positions: [(topic: String, partition: Int32, next: Int64)]) throws(Failure) {
        let rk = try handle()
        guard !positions.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(positions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for position in positions {
            rd_kafka_topic_partition_list_add(list, position.topic, position.partition)!.pointee.offset = position.next
        }
        var error = rd_kafka_commit(rk, list, 0)
        if error == RD_KAFKA_RESP_ERR_NO_ERROR {
            // The call can succeed while single partitions were refused.
            for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].err != RD_KAFKA_RESP_ERR_NO_ERROR {
                error = list.pointee.elems[index].err
                break
            }
        }
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw Failure(
                description: "\(description): committing offsets failed: \(String(cString: rd_kafka_err2str(error)))"
                    + (error == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || error == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS
                        ? " (a rebalance took partitions away: their messages are read again by their new owner)"
                        : ""))
        }
    }

    /// The group's committed next offsets for `partitions` of `topic` (absent: nothing
    /// committed yet).
    public func committed(_ topic: String, partitions: [Int32], timeoutMilliseconds: Int32 = 10_000) throws(Failure)
        -> [Int32: Int64]
    {
        let rk = try handle()
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in partitions { rd_kafka_topic_partition_list_add(list, topic, partition) }
        let error = rd_kafka_committed(rk, list, timeoutMilliseconds)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw Failure(
                description:
                    "\(description): reading committed offsets failed: \(String(cString: rd_kafka_err2str(error)))")
        }
        var result: [Int32: Int64] = [:]
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            if element.offset >= 0 { result[element.partition] = element.offset }
        }
        return result
    }

    /// Pauses (or resumes) fetching from every partition assigned now, so that `poll` keeps
    /// the membership alive (heartbeats, rebalances) without bringing messages. A partition
    /// assigned later starts unpaused, except one librdkafka gives back after a rebalance: it
    /// keeps the pause it had when it was taken away, so after a resume `poll` resumes the
    /// assignment again once a second.
    public func pauseAssigned(_ pause: Bool) throws(Failure) {
        resumedAt = pause ? nil : .now
        try setPaused(pause)
    }

    /// Repeats the resume at most once a second, looking at the clock every 100 polls: a
    /// partition paused, taken away by a rebalance and given back after the resume would
    /// otherwise never be read.
    func resumeAgainIfDue() throws(Failure) {
        pollsSinceResumeCheck += 1
        guard pollsSinceResumeCheck >= 100 else { return }
        pollsSinceResumeCheck = 0
        guard let last = resumedAt, ContinuousClock.now - last >= .seconds(1) else { return }
        resumedAt = .now
        try setPaused(false)
    }

    private func setPaused(_ pause: Bool) throws(Failure) {
        let rk = try handle()
        var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(rk, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR, let assignment else { return }
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        guard assignment.pointee.cnt > 0 else { return }
        let error = pause ? rd_kafka_pause_partitions(rk, assignment) : rd_kafka_resume_partitions(rk, assignment)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw Failure(
                description:
                    "\(description): cannot \(pause ? "pause" : "resume") the partitions: \(String(cString: rd_kafka_err2str(error)))"
            )
        }
    }

    /// Per assigned partition: the messages after the consumer's position, from the high
    /// watermark librdkafka last fetched (no round trip). Partitions without a position yet
    /// (nothing read) or a watermark are left out.
    public func lag() -> [(topic: String, partition: Int32, lag: Int64)] {
        guard let rk = try? handle() else { return [] }
        var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(rk, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR, let assignment else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        guard assignment.pointee.cnt > 0, rd_kafka_position(rk, assignment) == RD_KAFKA_RESP_ERR_NO_ERROR else {
            return []
        }
        var result: [(topic: String, partition: Int32, lag: Int64)] = []
        for index in 0..<Int(assignment.pointee.cnt) {
            let element = assignment.pointee.elems[index]
            guard element.offset >= 0, let name = element.topic else { continue }
            var low: Int64 = -1
            var high: Int64 = -1
            guard
                rd_kafka_get_watermark_offsets(rk, name, element.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
                high >= 0
            else { continue }
            result.append((String(cString: name), element.partition, max(0, high - element.offset)))
        }
        return result
    }

    /// Leaves the group cleanly (its partitions go to the other members at once), then closes.
    /// A leave that takes longer than `timeout` (a rebalance in progress, a broker away) is
    /// abandoned: the handle is destroyed without it, and the group notices the member's
    /// absence after its session timeout.
    public func leaveGroup(timeout: Duration = .seconds(5)) {
        guard let rk = try? handle() else { return }
        let queue = rd_kafka_queue_new(rk)
        if let error = rd_kafka_consumer_close_queue(rk, queue) {
            rd_kafka_error_destroy(error)
        } else {
            let deadline = ContinuousClock.now + timeout
            while rd_kafka_consumer_closed(rk) == 0, ContinuousClock.now < deadline {
                if let event = rd_kafka_queue_poll(queue, 100) { rd_kafka_event_destroy(event) }
            }
        }
        let closed = rd_kafka_consumer_closed(rk) != 0
        rd_kafka_queue_destroy(queue)
        abandon(leaving: !closed)
    }
}

extension KafkaReceivedMessage {
    /// The topic the message came from.
    public var topic: String { rd_kafka_topic_name(pointer.pointee.rkt).map { String(cString: $0) } ?? "" }

    /// Identifies the topic while the consumer lives (for caching what belongs to a topic
    /// instead of reading its name per message).
    public var topicHandle: OpaquePointer? { pointer.pointee.rkt }
}
