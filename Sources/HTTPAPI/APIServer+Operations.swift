import BridgeCore
import BridgeRuntime
import Hummingbird
import Metrics
import NIOCore
import PostgresSource

extension APIServer {
    func addOperationRoutes(to router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in
            JSONBody.response(["status": "ok", "version": version])
        }
        router.get("/readyz") { _, _ in
            var problems: [String] = []
            do {
                try await DatabaseAdmin.ping(postgres: postgres)
            } catch {
                problems.append("PostgreSQL is not reachable: \(error)")
            }
            for status in await supervisor.statuses() {
                if let problem = status.problem { problems.append(problem) }
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

    /// Slot lag and confirmed position per pipe, read when metrics are scraped.
    func updatePipeGauges() async {
        let statuses = await supervisor.statuses()
        let slots = (try? await DatabaseAdmin.listSlots(postgres: postgres)) ?? []
        for status in statuses {
            let dimensions = [("pipe", status.name)]
            Gauge(label: "pgbridge_pipe_running", dimensions: dimensions).record(status.state == .running ? 1 : 0)
            if let confirmed = status.stats?.confirmed {
                Gauge(label: "pgbridge_pipe_confirmed_lsn", dimensions: dimensions).record(Double(confirmed.value))
            }
            if case .replication(let source) = status.config.source,
                let lag = slots.first(where: { $0.name == source.slot })?.lagBytes
            {
                Gauge(label: "pgbridge_slot_lag_bytes", dimensions: dimensions).record(Double(lag))
            }
        }
    }
}
