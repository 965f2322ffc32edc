import BridgeCore
import BridgeRuntime
import Foundation
import Hummingbird
import NIOCore

extension APIServer {
    func addPipeRoutes(to router: Router<BasicRequestContext>) {
        router.get("/v1/pipes") { request, _ in
            try requireAdmin(request)
            let statuses = await supervisor.statuses()
            let slots = await slotLags()
            return JSONBody.response(["pipes": statuses.map { render($0, slots: slots) }])
        }
        router.post("/v1/pipes") { request, _ in
            try requireAdmin(request)
            let body = try await request.body.collect(upTo: config.maxBodyBytes)
            let definition = String(buffer: body)
            guard definition.first(where: { !$0.isWhitespace }) == "{" else {
                throw APIError.badRequest("expected a JSON object with the pipe (the shape of a pipes: entry)")
            }
            let status = try await control { try await supervisor.create(definition: definition) }
            return JSONBody.response(
                render(status, slots: await slotLags()), status: .created,
                headers: [.location: "/v1/pipes/\(status.name)"])
        }
        router.get("/v1/pipes/{name}") { request, context in
            try requireAdmin(request)
            let name = try pipeName(context)
            guard let status = await supervisor.status(name) else { throw APIError.notFound("no pipe named \(name)") }
            // Under `ha`, a standby says which replica runs the pipe.
            var owner: String?
            if status.role == .standby {
                owner = try? await PipeLease.owner(lockKey: PipeLease.lockKey(for: status.config), postgres: postgres)
            }
            return JSONBody.response(render(status, slots: await slotLags(), owner: owner))
        }
        router.post("/v1/pipes/{name}/start") { request, context in
            try requireAdmin(request)
            let name = try pipeName(context)
            let status = try await control { try await supervisor.start(name) }
            return JSONBody.response(render(status, slots: await slotLags()))
        }
        router.post("/v1/pipes/{name}/stop") { request, context in
            try requireAdmin(request)
            let name = try pipeName(context)
            let status = try await control { try await supervisor.stop(name) }
            return JSONBody.response(render(status, slots: await slotLags()))
        }
        router.delete("/v1/pipes/{name}") { request, context in
            try requireAdmin(request)
            let name = try pipeName(context)
            let dropSlot: Bool
            switch request.uri.queryParameters.get("drop_slot") {
            case nil, "false": dropSlot = false
            case "true": dropSlot = true
            case let other?: throw APIError.badRequest("drop_slot must be true or false, got '\(other)'")
            }
            let status = try await control { try await supervisor.drop(name, dropSlot: dropSlot) }
            return JSONBody.response(render(status, slots: [:]))
        }
    }

    func pipeName(_ context: BasicRequestContext) throws -> String {
        let raw = try context.parameters.require("name")
        let name = RestQuery.decodeComponent(Substring(raw), plusIsSpace: false)
        guard Identifier.isSimple(name) else { throw APIError.notFound("no pipe named \(name.prefix(80))") }
        return name
    }

    func control<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PipeSupervisor.ControlError {
            switch error {
            case .notFound(let message): throw APIError.notFound(message)
            case .conflict(let message): throw APIError.conflict(message)
            case .invalid(let message):
                throw APIError(status: .unprocessableContent, code: "invalid_pipe", message: message)
            case .unavailable(let message): throw APIError.unavailable(message)
            }
        }
    }

    /// Lag in bytes per slot name (empty when PostgreSQL cannot be asked).
    func slotLags() async -> [String: Int64] {
        // Admin-only routes: a fresh answer (still on the monitor's one connection).
        guard let slots = await monitor.snapshot(maxAge: .zero).slots else { return [:] }
        var lags: [String: Int64] = [:]
        for slot in slots { if let lag = slot.lagBytes { lags[slot.name] = lag } }
        return lags
    }

    func render(_ status: PipeSupervisor.Status, slots: [String: Int64], owner: String? = nil) -> [String: Any] {
        var object: [String: Any] = [
            "name": status.name,
            "state": status.state.rawValue,
            "origin": status.origin.rawValue,
            "healthy": status.problem == nil,
            "format": status.config.format.rawValue,
        ]
        if let replica = supervisor.replicaID {
            var ha: [String: Any] = ["replica": replica, "role": status.role?.rawValue ?? "none"]
            if status.role == .owner { ha["owner"] = replica } else if let owner { ha["owner"] = owner }
            object["ha"] = ha
        }
        var source: [String: Any] = [:]
        switch status.config.source {
        case .replication(let replication):
            source = ["kind": "replication", "slot": replication.slot, "publication": replication.publication]
            if let lag = slots[replication.slot] { object["lag_bytes"] = lag }
        case .outbox(let outbox):
            source = ["kind": "outbox", "channels": outbox.channels]
        case .notify(let notify):
            source = ["kind": "notify", "channels": notify.channels]
        case .message(let message):
            source = ["kind": message.kind, "format": message.format.rawValue, "table": message.table]
            if let read = status.stats?.source {
                source["messages"] = read.messages
                source["bytes"] = read.bytes
                source["refused"] = read.refused
                source["lag"] = read.lag
                source["pending"] = read.pending
                source["measured_at"] = read.measuredAt.map { ISO8601DateFormatter().string(from: $0) } ?? NSNull()
            }
        }
        object["source"] = source
        if let problem = status.problem { object["problem"] = problem }
        if let lastError = status.lastError { object["last_error"] = lastError }
        let stats = status.stats
        object["confirmed_lsn"] = stats?.confirmed.map { "\($0)" } ?? NSNull()
        object["events"] = stats?.events ?? 0
        object["bytes"] = stats?.bytes ?? 0
        object["deliveries"] = stats?.deliveries ?? 0
        object["retries"] = stats?.retries ?? 0
        object["dead_letters"] = stats?.deadLetters ?? 0
        object["sinks"] = status.config.sinks.map { sink -> [String: Any] in
            var rendered: [String: Any] = ["name": sink.name, "kind": sink.kind]
            if let counters = stats?.sinks.first(where: { $0.name == sink.name }) {
                rendered["events"] = counters.events
                rendered["bytes"] = counters.bytes
                rendered["errors"] = counters.errors
                rendered["retries"] = counters.retries
                rendered["dead_letters"] = counters.deadLetters
                if let lastError = counters.lastError { rendered["last_error"] = lastError }
            }
            return rendered
        }
        if let definition = status.definition, let redacted = DefinitionRedaction.redact(definition) {
            object["definition"] = redacted
        }
        return object
    }
}
