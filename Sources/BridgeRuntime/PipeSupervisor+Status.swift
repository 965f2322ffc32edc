import BridgeCore
import Pipeline

extension PipeSupervisor {
    /// Returns once `run` has loaded the stored pipes and started them (or gave up), so that
    /// the API never answers from a half-loaded list.
    func untilStarted() async {
        if started { return }
        await withCheckedContinuation { startWaiters.append($0) }
    }

    func markStarted() {
        started = true
        let waiters = startWaiters
        startWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    public func status(_ name: String) async -> Status? {
        await untilStarted()
        return snapshot(name)
    }

    public func statuses() async -> [Status] {
        await untilStarted()
        return order.compactMap(snapshot)
    }

    public func buffer(_ name: String) async -> PipeEventBuffer? {
        await untilStarted()
        return entries[name]?.buffer
    }

    func snapshot(_ name: String) -> Status? {
        guard let entry = entries[name], let pipe = machine.pipes[name] else { return nil }
        let running = entry.run != nil
        let stats = entry.runner?.stats ?? entry.lastStats
        let problem = problem(entry, pipe, stats: stats)
        return Status(
            name: name, origin: entry.origin, state: running ? .running : .stopped, config: entry.config,
            definition: entry.definition, stats: stats, problem: problem,
            problemSummary: problem.map { _ in
                running ? "pipe \(name) is retrying" : "pipe \(name) stopped after an error"
            },
            lastError: pipe.failure?.description ?? stats?.lastError, role: running ? entry.role : nil)
    }

    private func problem(_ entry: Entry, _ pipe: StateMachine.Pipe, stats: PipeRunner.Stats?) -> String? {
        let name = entry.config.name
        if pipe.desired == .running, entry.run == nil, started {
            return "pipe \(name) stopped after an error: \(pipe.failure?.description ?? "unknown")"
        }
        guard entry.run != nil, let stats, let errorAt = stats.lastErrorAt else { return nil }
        if let deliveredAt = stats.lastDeliveryAt, deliveredAt > errorAt { return nil }
        guard ContinuousClock.now - errorAt < .seconds(60) else { return nil }
        return "pipe \(name) is retrying: \(stats.lastError ?? "")"
    }
}
