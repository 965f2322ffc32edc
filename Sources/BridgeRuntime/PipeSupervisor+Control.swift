import BridgeCore
import Foundation
import Pipeline
import PostgresSource

/// The HTTP API's pipe management: create, start, stop and drop, one request per pipe at a time.
extension PipeSupervisor {
    /// Creates a pipe from its JSON definition, stores it and starts it.
    public func create(definition: String) async throws(ControlError) -> Status {
        await untilStarted()
        let pipe: PipeConfig
        do {
            pipe = try BridgeConfig.parsePipe(
                text: definition, registry: factory.registry, environment: Self.pipeEnvironment, trust: apiTrust)
        } catch {
            throw .invalid("\(error)")
        }
        if entries[pipe.name] != nil || busy.contains(pipe.name) {
            throw .conflict("pipe \(pipe.name) already exists")
        }
        let slot: String?
        if case .replication(let source) = pipe.source { slot = source.slot } else { slot = nil }
        if let slot, reservedSlots.contains(slot) {
            throw .conflict("slot \(slot) is being taken by another pipe: each pipe needs its own slot")
        }
        busy.insert(pipe.name)
        if let slot { reservedSlots.insert(slot) }
        defer {
            busy.remove(pipe.name)
            if let slot { reservedSlots.remove(slot) }
        }
        do {
            try checkConflicts(pipe)
            // Builds the sinks once, so that a sink setting only the runtime can check fails here.
            _ = try factory.runner(for: pipe, source: try factory.makeSource(for: pipe))
        } catch let error as ControlError {
            throw error
        } catch {
            throw .invalid("\(error)")
        }
        try await save(PipeStore.Record(name: pipe.name, definition: definition, running: true), required: true)
        entries[pipe.name] = Entry(config: pipe, origin: .api, definition: definition)
        machine.add(pipe.name, desired: .running)
        order.append(pipe.name)
        do {
            try launch(pipe.name)
        } catch {
            machine.launchFailed(pipe.name, PipeFailure(error))
        }
        logger.info("pipe \(pipe.name) created through the API")
        return snapshot(pipe.name)!
    }

    public func start(_ name: String) async throws(ControlError) -> Status {
        await untilStarted()
        guard let entry = entries[name] else { throw .notFound("no pipe named \(name)") }
        try claim(name)
        defer { busy.remove(name) }
        if entry.run == nil {
            try await save(
                PipeStore.Record(name: name, definition: entry.definition, running: true),
                required: entry.origin == .api)
            guard entries[name] != nil else { throw .notFound("no pipe named \(name)") }
            machine.setDesired(name, .running)
            do {
                try launch(name)
            } catch {
                machine.launchFailed(name, PipeFailure(error))
                throw .invalid("pipe \(name) cannot start: \(error)")
            }
            logger.info("pipe \(name) started through the API")
        }
        return snapshot(name)!
    }

    /// Stops the pipe once what it captured is delivered and confirmed.
    public func stop(_ name: String) async throws(ControlError) -> Status {
        await untilStarted()
        guard entries[name] != nil else { throw .notFound("no pipe named \(name)") }
        try claim(name)
        defer { busy.remove(name) }
        return try await stopClaimed(name)
    }

    func claim(_ name: String) throws(ControlError) {
        guard !busy.contains(name) else {
            throw .conflict("pipe \(name) is being changed by another request: try again when it is done")
        }
        busy.insert(name)
    }

    func stopClaimed(_ name: String) async throws(ControlError) -> Status {
        guard let entry = entries[name] else { throw .notFound("no pipe named \(name)") }
        try await save(
            PipeStore.Record(name: name, definition: entry.definition, running: false), required: entry.origin == .api)
        machine.setDesired(name, .stopped)
        if entry.run != nil {
            await stopRun(name)
            logger.info("pipe \(name) stopped through the API")
        }
        return snapshot(name)!
    }

    /// Stops and removes an API pipe; with `dropSlot`, also drops its replication slot.
    public func drop(_ name: String, dropSlot: Bool) async throws(ControlError) -> Status {
        await untilStarted()
        guard let entry = entries[name] else { throw .notFound("no pipe named \(name)") }
        guard entry.origin == .api else {
            throw .conflict(
                "pipe \(name) is defined in the configuration file: remove it there, or stop it with POST /v1/pipes/\(name)/stop"
            )
        }
        try claim(name)
        defer { busy.remove(name) }
        var final = try await stopClaimed(name)
        do {
            try await store?.delete(name: name)
        } catch {
            throw .unavailable("cannot delete pipe \(name) from pgbridge.pipes: \(error)")
        }
        entries[name]?.buffer?.close()
        entries[name] = nil
        machine.remove(name)
        order.removeAll { $0 == name }
        if dropSlot, case .replication(let source) = entry.config.source {
            try await dropReplicationSlot(source.slot)
        }
        final.state = .dropped
        logger.info("pipe \(name) dropped through the API\(dropSlot ? " with its slot" : "")")
        return final
    }

    // MARK: Internals

    /// What a pipe written through the API may reach: files inside state_dir, tuning properties.
    var apiTrust: ConfigTrust { .api(stateDirectory: factory.config.stateDirectory) }

    /// What `${NAME}` may expand to in pipes created through the API: only variables named
    /// `PGBRIDGE_PIPE_*`, so that a definition cannot send the process's other secrets
    /// (database password, admin token) to a sink of its choosing.
    static var pipeEnvironment: [String: String] {
        ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("PGBRIDGE_PIPE_") }
    }

    func checkConflicts(_ pipe: PipeConfig) throws(ControlError) {
        guard case .replication(let source) = pipe.source else { return }
        for other in entries.values {
            if case .replication(let existing) = other.config.source, existing.slot == source.slot,
                other.config.name != pipe.name
            {
                throw .conflict(
                    "slot \(source.slot) is already used by pipe \(other.config.name): each pipe needs its own slot")
            }
        }
    }

    func save(_ record: PipeStore.Record, required: Bool) async throws(ControlError) {
        guard let store else { return }
        do {
            try await store.save(record)
        } catch {
            if required { throw .unavailable("cannot store pipe \(record.name): \(error)") }
            logger.warning("the state of pipe \(record.name) is not stored and will not survive a restart: \(error)")
        }
    }

    func dropReplicationSlot(_ slot: String) async throws(ControlError) {
        // The walsender may need a moment to release the slot after the pipe stopped.
        var lastError: (any Error)?
        for _ in 0..<50 {
            do {
                try await DatabaseAdmin.dropSlot(slot, postgres: factory.config.postgres)
                return
            } catch {
                lastError = error
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        throw .unavailable("the pipe was dropped but its slot \(slot) was not: \(lastError.map { "\($0)" } ?? "")")
    }
}
