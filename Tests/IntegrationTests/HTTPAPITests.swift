import AsyncHTTPClient
import Foundation
import Synchronization
import Testing

/// The HTTP API of the real `pgbridge run` binary, over a real socket, against real PostgreSQL.
@Suite("HTTP API", .enabled(if: TestEnvironment.hasBinary))
struct HTTPAPITests {
    static let adminToken = "test-admin-token-0123456789"

    struct Bridge {
        let process: BridgeProcess
        let api: APIClient
    }

    func start(_ config: String, directory: String) async throws -> Bridge {
        let process = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        let port = try await APIClient.waitForPort(process)
        return Bridge(process: process, api: APIClient(base: "http://127.0.0.1:\(port)", token: Self.adminToken))
    }

    /// A pipe on `items` whose only sink is a closed port (port 9), streaming once this returns.
    func createUnreachablePipe(_ name: String, _ bridge: Bridge, _ db: TestDatabase) async throws {
        let created = try await bridge.api.request(
            .POST, "/v1/pipes",
            body: """
                {"name": "\(name)", "source": {"tables": ["public.items"], "slot": "\(name)_\(db.name)"},
                 "sinks": [{"kind": "http", "url": "http://127.0.0.1:9/hook", "retry_interval": "100ms"}]}
                """)
        #expect(created.status == 201, "\(created.body)")
        try await waitForSlot(db, "\(name)_\(db.name)")
    }

    func stop(_ bridge: Bridge) async throws {
        bridge.process.kill(SIGTERM)
        let status = try await bridge.process.waitForExit()
        #expect(status == 0, "pgbridge exited with \(status): \(bridge.process.stderr.suffix(2000))")
    }

    /// A pipe that cannot start is an error in the log with its fix, with the API on (the process
    /// keeps running and /readyz says why) and without it (the process exits 3).
    @Test func aPipeThatCannotStartIsLoggedWithOrWithoutTheAPI() async throws {
        let db = try TestDatabase(prefix: "api_broken")
        defer { db.drop() }
        try db.sql("CREATE TABLE nokey (id int, name text)")
        let directory = try TestEnvironment.scratchDirectory("api-\(db.name)")
        let pipe = """
            pipes:
              - name: broken
                source: {kind: replication, tables: [public.nokey], slot: broken_\(db.name), publication: broken_\(db.name)}
                sinks: [{kind: file, path: \(directory)/events.jsonl}]
            """
        let expected = "pipe broken stopped after an error: table public.nokey has no primary key"
        let withAPI = try ConfigFile.writeWithAPI(directory: directory, url: db.url, rest: pipe, name: "with-api.yaml")
        let bridge = try await start(withAPI, directory: directory)
        defer { bridge.process.kill(SIGKILL) }  // also when an expectation throws first
        try await waitFor("the failure in the log") { bridge.process.stderr.contains(expected) }
        let line = bridge.process.stderr.split(separator: "\n").first { $0.contains(expected) } ?? ""
        #expect(line.contains(" error ") && line.contains("ALTER TABLE public.nokey REPLICA IDENTITY FULL"), "\(line)")
        let ready = try await bridge.api.get("/readyz")
        #expect(ready.status == 503 && ready.body.contains("no primary key"), "\(ready.body)")
        // Without the admin token: what is wrong, not where (no error text, user, host, database).
        let anonymous = try await bridge.api.request(.GET, "/readyz", token: .some(nil))
        #expect(anonymous.status == 503 && anonymous.body.contains("pipe broken stopped after an error"))
        for secret in ["nokey", db.name, "postgres@", "127.0.0.1"] {
            #expect(!anonymous.body.contains(secret), "\(secret) in \(anonymous.body)")
        }
        try await stop(bridge)

        let withoutAPI = "\(directory)/without-api.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        \(pipe)
        """.write(toFile: withoutAPI, atomically: true, encoding: .utf8)
        let result = try await BridgeProcess.run(["run", "--config", withoutAPI], directory: directory)
        #expect(result.status == 3)
        #expect(result.stderr.contains("table public.nokey has no primary key"), "\(result.stderr)")
    }

    /// `/readyz` and `/metrics` need no token: a flood of them must not open PostgreSQL
    /// connections (one monitor connection, answers cached, one query at a time).
    @Test func unauthenticatedProbesDoNotExhaustTheDatabase() async throws {
        let db = try TestDatabase(prefix: "api_flood")
        defer { db.drop() }
        try db.sql("CREATE TABLE items (id int PRIMARY KEY)")
        let directory = try TestEnvironment.scratchDirectory("api-\(db.name)")
        let config = try ConfigFile.writeWithAPI(
            directory: directory, url: db.url,
            rest: """
                pipes:
                  - name: flood
                    source: {tables: [public.items], slot: flood_\(db.name), publication: flood_\(db.name)}
                    sinks: [{kind: file, path: \(directory)/events.jsonl}]
                """)
        let bridge = try await start(config, directory: directory)
        defer { bridge.process.kill(SIGKILL) }  // also when an expectation throws first
        try await waitForSlot(db, "flood_\(db.name)")
        let anonymous = APIClient(base: bridge.api.base, token: nil)
        #expect(try await anonymous.get("/readyz").status == 200)
        let count =
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '\(db.name)' AND application_name LIKE 'pgbridge%'"
        // The steady count: connections opened once after the start (the slot monitor's) included.
        var before = -1
        for _ in 0..<30 {
            before = max(before, Int(try db.value(count) ?? "") ?? -1)
            try await Task.sleep(for: .milliseconds(100))
        }

        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(
                connectionPool: .init(idleTimeout: .seconds(5), concurrentHTTP1ConnectionsPerHostSoftLimit: 250)))
        let peak = Mutex(before)
        let sampling = Task {
            while !Task.isCancelled {
                if let now = Int(try db.value(count) ?? "") { peak.withLock { $0 = max($0, now) } }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let statuses = try await withThrowingTaskGroup(of: (String, Int, Bool).self) { group in
            for index in 0..<500 {
                let path = index.isMultiple(of: 2) ? "/readyz" : "/metrics"
                group.addTask {
                    let response = try await client.execute(
                        HTTPClientRequest(url: bridge.api.base + path), timeout: .seconds(60))
                    let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
                    let correct =
                        path == "/readyz"
                        ? body.contains("\"ready\"") : body.contains("pgbridge_pipe_running{pipe=\"flood\"} 1")
                    return (path, Int(response.status.code), correct)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        sampling.cancel()
        _ = try? await sampling.value
        try await client.shutdown()
        #expect(
            statuses.count == 500 && statuses.allSatisfy { $0.1 == 200 && $0.2 },
            "\(statuses.filter { !$0.2 }.prefix(3))")
        let after = Int(try db.value(count) ?? "") ?? -1
        #expect(
            peak.withLock { $0 } <= before,
            "pgbridge held \(before) connections, \(peak.withLock { $0 }) during the flood")
        #expect(after <= before)
        try await stop(bridge)
    }

    /// A pipe created through the API runs, serves its events (paging, SSE, metrics), survives
    /// two restarts with its state (running, then stopped), and is dropped with its slot.
    @Test func pipeLifecycleThroughTheAPI() async throws {
        let db = try TestDatabase(prefix: "api_pipes")
        defer { db.drop() }
        try db.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
        let directory = try TestEnvironment.scratchDirectory("api-\(db.name)")
        let setup = try await BridgeProcess.run(["setup", "--url", db.url], directory: directory)
        #expect(setup.status == 0, "\(setup.stderr)")
        let hook = try await HookServer.start()
        let events = "\(directory)/state/api-events.jsonl"
        let config = try ConfigFile.writeWithAPI(
            directory: directory, url: db.url, api: "buffer_events: 1000",
            rest: """
                pipes:
                  - name: from_config
                    source: {kind: notify, channels: [unused_channel]}
                    sinks: [{kind: file, path: \(directory)/config-events.jsonl}]
                """)
        var bridge = try await start(config, directory: directory)
        defer { bridge.process.kill(SIGKILL) }  // the last one, also when an expectation throws first

        #expect(try await bridge.api.get("/healthz").status == 200)
        let missing = try await bridge.api.request(.GET, "/v1/pipes", token: .some(nil))
        #expect(missing.status == 401)
        #expect(missing.body.contains("missing admin token: send Authorization: Bearer <api.admin_token>"))
        let wrong = try await bridge.api.request(.GET, "/v1/pipes", token: "wrong-token-wrong-token")
        #expect(wrong.status == 401 && wrong.body.contains("wrong admin token"), "\(wrong.body)")
        let initial = try await bridge.api.get("/v1/pipes")
        #expect(initial.status == 200)
        #expect((initial.json["pipes"] as? [[String: Any]])?.map { $0["name"] as? String } == ["from_config"])

        let definition = """
            {"name": "api_pipe",
             "source": {"tables": ["public.items"], "slot": "api_pipe_\(db.name)", "publication": "api_pipe_pub"},
             "sinks": [
               {"kind": "file", "path": "\(events)", "name": "file"},
               {"kind": "http", "url": "\(hook.url)", "name": "hook", "headers": {"Authorization": "Bearer hook-secret-123"}}
             ]}
            """
        let created = try await bridge.api.request(.POST, "/v1/pipes", body: definition)
        #expect(created.status == 201, "\(created.body)")
        #expect(created.json["state"] as? String == "RUNNING")
        #expect(!created.body.contains("hook-secret-123"), "the header value must be redacted: \(created.body)")
        #expect(created.body.contains("***"))
        #expect(try await bridge.api.request(.POST, "/v1/pipes", body: definition).status == 409)
        let invalid = try await bridge.api.request(
            .POST, "/v1/pipes",
            body: #"{"name": "bad", "source": {"tables": ["t"]}, "sinks": [{"kind": "file", "paht": "x"}]}"#)
        #expect(invalid.status == 422)
        #expect(invalid.body.contains("paht"), "the error names the key: \(invalid.body)")
        #expect(try await bridge.api.request(.DELETE, "/v1/pipes/from_config").status == 409)
        #expect(try await bridge.api.get("/v1/pipes/nope").status == 404)

        try await waitForSlot(db, "api_pipe_\(db.name)")
        try db.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g")
        try await waitFor("5 events delivered") {
            let pipe = try await bridge.api.get("/v1/pipes/api_pipe").json
            return (pipe["events"] as? Int ?? 0) >= 5
        }
        let status = try await bridge.api.get("/v1/pipes/api_pipe").json
        #expect(status["healthy"] as? Bool == true)
        #expect((status["confirmed_lsn"] as? String)?.contains("/") == true)
        #expect(status["lag_bytes"] is Int)
        let sinks = status["sinks"] as? [[String: Any]] ?? []
        #expect(sinks.map { $0["name"] as? String } == ["file", "hook"])
        #expect(sinks.allSatisfy { $0["events"] as? Int == 5 })

        // Pull API: two pages, then an unknown cursor is gone.
        let first = try await bridge.api.get("/v1/pipes/api_pipe/events?limit=2")
        #expect(first.status == 200, "\(first.body)")
        let firstEvents = first.json["events"] as? [[String: Any]] ?? []
        #expect(firstEvents.compactMap { ($0["after"] as? [String: Any])?["id"] as? Int } == [1, 2])
        let next = try #require(first.json["next"] as? String)
        let rest = try await bridge.api.get(
            "/v1/pipes/api_pipe/events?after=\(next.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
        #expect(
            (rest.json["events"] as? [[String: Any]] ?? []).compactMap {
                ($0["after"] as? [String: Any])?["id"] as? Int
            }
                == [3, 4, 5])
        let filtered = try await bridge.api.get("/v1/pipes/api_pipe/events?table=items&op=delete")
        #expect((filtered.json["events"] as? [Any])?.isEmpty == true)
        #expect(try await bridge.api.get("/v1/pipes/api_pipe/events?after=0%2F1%3A99").status == 410)
        #expect(try await bridge.api.get("/v1/pipes/api_pipe/events?op=upsert").status == 400)

        // SSE: resumes after Last-Event-ID (events 4 and 5), then sees a new row live.
        let fourth = try #require(firstEvents.last?["id"] as? String)
        var seen: [Int] = []
        try await bridge.api.stream(
            "/v1/pipes/api_pipe/stream", headers: [("Last-Event-ID", fourth)],
            onOpen: { try db.sql("INSERT INTO items VALUES (6, 'live')") }
        ) { id, data in
            let event = try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]
            #expect(event?["id"] as? String == id)
            if let row = (event?["after"] as? [String: Any])?["id"] as? Int { seen.append(row) }
            return seen.count < 4
        }
        #expect(seen == [3, 4, 5, 6])

        let metrics = try await bridge.api.get("/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains(#"pgbridge_sink_events_total{pipe="api_pipe",sink="file"} 6"#), "\(metrics.body)")
        #expect(metrics.body.contains("pgbridge_slot_lag_bytes{pipe=\"api_pipe\"}"))
        #expect(metrics.body.contains("pgbridge_sink_delivery_seconds_bucket"))
        #expect(metrics.body.contains(#"pgbridge_source_latency_seconds_count{pipe="api_pipe"}"#))
        #expect(metrics.body.contains(#"pgbridge_pipe_confirmed_lsn{pipe="api_pipe"}"#))
        #expect(try await bridge.api.get("/readyz").status == 200)

        // Restart: the pipe comes back from pgbridge.pipes and keeps delivering.
        try await stop(bridge)
        bridge = try await start(config, directory: directory)
        #expect(try await bridge.api.get("/v1/pipes/api_pipe").json["state"] as? String == "RUNNING")
        try await waitForSlot(db, "api_pipe_\(db.name)")
        try db.sql("INSERT INTO items VALUES (7, 'after restart')")
        let afterRestart = try await EventFile.waitFor(events, timeout: .seconds(60)) { events in
            events.contains { $0.after?["id"] as? Int == 7 }
        }
        #expect(afterRestart.contains { $0.after?["name"] as? String == "after restart" })

        // Stop: stays stopped across a restart.
        let stopped = try await bridge.api.request(.POST, "/v1/pipes/api_pipe/stop")
        #expect(stopped.json["state"] as? String == "STOPPED", "\(stopped.body)")
        try await stop(bridge)
        bridge = try await start(config, directory: directory)
        #expect(try await bridge.api.get("/v1/pipes/api_pipe").json["state"] as? String == "STOPPED")
        #expect(try await bridge.api.request(.POST, "/v1/pipes/api_pipe/start").json["state"] as? String == "RUNNING")

        // Drop with the slot.
        let dropped = try await bridge.api.request(.DELETE, "/v1/pipes/api_pipe?drop_slot=true")
        #expect(dropped.status == 200, "\(dropped.body)")
        #expect(dropped.json["state"] as? String == "DROPPED")
        #expect(try await bridge.api.get("/v1/pipes/api_pipe").status == 404)
        #expect(
            try db.value("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'api_pipe_\(db.name)'") == "0")
        #expect(try db.value("SELECT count(*) FROM pgbridge.pipes WHERE name = 'api_pipe'") == "0")
        try await stop(bridge)
        #expect(!bridge.process.stderr.contains("hook-secret-123"), "a secret reached the log")
    }

    /// /readyz turns 503 while a pipe retries an unreachable sink, and back to 200 once it is dropped.
    @Test func readinessReportsAFailingPipe() async throws {
        let db = try TestDatabase(prefix: "api_ready")
        defer { db.drop() }
        try db.sql("CREATE TABLE items (id int PRIMARY KEY)")
        let directory = try TestEnvironment.scratchDirectory("api-\(db.name)")
        #expect(try await BridgeProcess.run(["setup", "--url", db.url], directory: directory).status == 0)
        let config = try ConfigFile.writeWithAPI(directory: directory, url: db.url)
        let bridge = try await start(config, directory: directory)
        defer { bridge.process.kill(SIGKILL) }
        #expect(try await bridge.api.get("/readyz").status == 200)
        try await createUnreachablePipe("unreachable", bridge, db)
        try db.sql("INSERT INTO items VALUES (1)")
        try await waitFor("/readyz to report the pipe") {
            let ready = try await bridge.api.get("/readyz")
            return ready.status == 503 && ready.body.contains("pipe unreachable is retrying: ")
        }
        #expect(try await bridge.api.request(.DELETE, "/v1/pipes/unreachable?drop_slot=true").status == 200)

        // Two concurrent creations on one slot: exactly one wins.
        let api = bridge.api
        let slot = "twin_\(db.name)"
        async let first = api.request(
            .POST, "/v1/pipes",
            body:
                #"{"name": "twin_a", "source": {"tables": ["public.items"], "slot": "\#(slot)"}, "sinks": [{"kind": "file", "path": "twins.jsonl"}]}"#
        )
        async let second = api.request(
            .POST, "/v1/pipes",
            body:
                #"{"name": "twin_b", "source": {"tables": ["public.items"], "slot": "\#(slot)"}, "sinks": [{"kind": "file", "path": "twins.jsonl"}]}"#
        )
        let outcomes = try await [first, second]
        #expect(outcomes.map(\.status).sorted() == [201, 409], "\(outcomes.map(\.body))")
        let winner = outcomes[0].status == 201 ? "twin_a" : "twin_b"
        #expect(try await bridge.api.request(.DELETE, "/v1/pipes/\(winner)?drop_slot=true").status == 200)
        #expect(try await bridge.api.get("/readyz").status == 200)
        #expect(try await bridge.api.get("/v1/openapi.json").json["openapi"] as? String == "3.1.0")

        // Shutting down while a sink is down: the stuck delivery is cancelled, the exit is clean.
        try await createUnreachablePipe("stuck", bridge, db)
        try db.sql("INSERT INTO items VALUES (2)")
        try await waitFor("the stuck pipe to retry") {
            try await bridge.api.get("/v1/pipes/stuck").json["healthy"] as? Bool == false
        }
        try await stop(bridge)
    }
}
