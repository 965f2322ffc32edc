import BridgeCore
import BridgeRuntime
import Hummingbird
import Metrics
import NIOCore
import PostgresClient

extension APIServer {
    func addOperationRoutes(to router: Router<BasicRequestContext>) {
        // Probed often (liveness checks, load balancers): the answer never changes, so it is
        // encoded once.
        let health = JSONBody.encode(["status": "ok", "version": version])
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: health))
        }
        router.get("/readyz") { request, _ in
            // Unauthenticated callers (probes, anyone who can reach the port) learn what is wrong,
            // not where: no user, host, database or error text without the admin token.
            let detailed = (try? requireAdmin(request)) != nil
            var problems: [String] = []
            let database = await monitor.snapshot()
            if let error = database.error {
                problems.append(detailed ? "PostgreSQL is not reachable: \(error)" : "PostgreSQL is not reachable")
            }
            let statuses = await supervisor.statuses()
            for status in statuses {
                if let problem = detailed ? status.problem : status.problemSummary { problems.append(problem) }
            }
            if let slots = database.slots {
                problems += Self.slotProblems(statuses, slots, detailed: detailed)
            }
            if problems.isEmpty { return JSONBody.response(["status": "ready"]) }
            return JSONBody.response(["status": "not ready", "problems": problems], status: .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            await updatePipeGauges()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }

    /// Slots a pipe depends on that endanger the database or the pipe: lag above
    /// `max_lag_bytes`, or invalidated (`wal_status = lost`).
    static func slotProblems(_ statuses: [PipeSupervisor.Status], _ slots: [ReplicationSlotRow], detailed: Bool)
        -> [String]
    {
        var problems: [String] = []
        for status in statuses {
            guard case .replication(let source) = status.config.source,
                let slot = slots.first(where: { $0.name == source.slot })
            else { continue }
            if !detailed {
                if slot.walStatus == "lost" {
                    problems.append("pipe \(status.name): replication slot \(slot.name) is lost")
                } else if let limit = source.maxLagBytes, let lag = slot.lagBytes, lag > limit {
                    problems.append("pipe \(status.name): slot \(slot.name) retains more WAL than max_lag_bytes")
                }
            } else if slot.walStatus == "lost" {
                problems.append(
                    "pipe \(status.name): replication slot \(slot.name) is lost (wal_status = lost): drop it with `pgbridge slots drop \(slot.name)`, restart the pipe and re-sync consumers (see docs/troubleshooting.md)"
                )
            } else if let limit = source.maxLagBytes, let lag = slot.lagBytes, lag > limit {
                problems.append(
                    "pipe \(status.name): slot \(slot.name) retains \(lag) bytes of WAL, more than max_lag_bytes (\(limit)): a sink is down or too slow, or the pipe is stopped"
                )
            }
        }
        return problems
    }

    /// Slot lag and confirmed position per pipe, read when metrics are scraped.
    func updatePipeGauges() async {
        let statuses = await supervisor.statuses()
        // nil: PostgreSQL did not answer; the slot gauges keep their values rather than look current.
        let slots = await monitor.snapshot().slots
        for status in statuses {
            let dimensions = [("pipe", status.name)]
            Gauge(label: "pgbridge_pipe_running", dimensions: dimensions).record(status.state == .running ? 1 : 0)
            if let confirmed = status.stats?.confirmed {
                Gauge(label: "pgbridge_pipe_confirmed_lsn", dimensions: dimensions).record(Double(confirmed.value))
            }
            guard case .replication(let source) = status.config.source, let slots else { continue }
            guard let slot = slots.first(where: { $0.name == source.slot }) else {
                // No slot (dropped, or not created yet): nothing is lost or lagging.
                Gauge(label: "pgbridge_slot_lost", dimensions: dimensions).record(0)
                if source.maxLagBytes != nil {
                    Gauge(label: "pgbridge_slot_lag_exceeded", dimensions: dimensions).record(0)
                }
                continue
            }
            if let lag = slot.lagBytes {
                Gauge(label: "pgbridge_slot_lag_bytes", dimensions: dimensions).record(Double(lag))
            }
            Gauge(label: "pgbridge_slot_lost", dimensions: dimensions).record(slot.walStatus == "lost" ? 1 : 0)
            if let safe = slot.safeWalSize {
                Gauge(label: "pgbridge_slot_safe_wal_size_bytes", dimensions: dimensions).record(Double(safe))
            }
            if let limit = source.maxLagBytes {
                Gauge(label: "pgbridge_slot_max_lag_bytes", dimensions: dimensions).record(Double(limit))
                Gauge(label: "pgbridge_slot_lag_exceeded", dimensions: dimensions).record(
                    (slot.lagBytes ?? 0) > limit ? 1 : 0)
            }
        }
    }
}
