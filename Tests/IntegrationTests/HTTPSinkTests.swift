import BridgeCore
import Foundation
import HTTPSink
import Pipeline
import Processing
import Testing

@Suite("HTTP sink against a local Hummingbird receiver", .enabled(if: TestEnvironment.hasPostgres))
struct HTTPSinkTests {
    func httpSink(_ yaml: String, retries: Int = 10, format: EventFormat = .native) throws -> PipeSink {
        // A generous timeout: in a full parallel run the in-process receiver shares two cores with
        // every other test and may answer slowly.
        let timeout = yaml.contains("timeout:") ? "" : ", timeout: 60s"
        let sink = try SinkFixture.parse("kind: http, \(yaml)\(timeout)", retries: retries)
        guard let http = sink.settings as? HTTPSinkConfig else { throw TestFailure("expected an http sink") }
        return PipeSink(
            name: "http", sink: try HTTPSink(config: http, format: format, logger: InProcessPipe.testLogger),
            delivery: sink.delivery)
    }

    func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }

    @Test func eventBodiesHeadersAndIdempotencyKeys() async throws {
        let server = try await HookServer.start()
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_basic")
        defer { db.drop() }
        try db.sql("CREATE TABLE prices (id int PRIMARY KEY, name text, price numeric)")
        let sink = try httpSink("url: \"\(server.url)?secret=q\", headers: {X-Hook-Token: abc123}")
        #expect(sink.sink.description == "http:POST http://127.0.0.1:\(server.port)/…")  // no path, no query
        let pipe = try InProcessPipe(
            database: db, name: "http_basic", tables: ["public.prices"], sinks: [sink])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO prices SELECT g, 'item ' || g, g * 2.5 FROM generate_series(1, 5) g")
        try await waitFor { server.delivered.count >= 5 }
        try await pipe.stop()
        let requests = server.delivered
        #expect(requests.count == 5)
        for (index, request) in requests.enumerated() {
            let event = try #require(json(request.body) as? [String: Any])
            #expect(event.after?["id"] as? Int == index + 1)
            #expect(request.headers["idempotency-key"] == event.eventID)
            #expect(request.headers["x-hook-token"] == "abc123")
            #expect(request.headers["content-type"] == "application/json")
            #expect(request.headers["user-agent"]?.hasPrefix("pgbridge/") == true)
        }
    }

    @Test func batchesAreJSONArrays() async throws {
        let server = try await HookServer.start()
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_batch")
        defer { db.drop() }
        try db.sql("CREATE TABLE readings (id int PRIMARY KEY, v int)")
        let pipe = try InProcessPipe(
            database: db, name: "http_batch", tables: ["public.readings"],
            sinks: [try httpSink("url: \"\(server.url)\", batch_count: 10")])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO readings SELECT g, g FROM generate_series(1, 25) g")
        try await waitFor { server.delivered.compactMap { json($0.body) as? [Any] }.reduce(0) { $0 + $1.count } >= 25 }
        try await pipe.stop()
        let arrays = server.delivered.compactMap { json($0.body) as? [[String: Any]] }
        #expect(arrays.count == server.delivered.count)
        #expect(arrays.flatMap { $0 }.compactMap { $0.after?["id"] as? Int } == Array(1...25))
        #expect(arrays.allSatisfy { $0.count <= 10 })
        // A batch's key spans its first and last event; a batch of one (the first may go out
        // before the other rows are decoded) has that event's id.
        for (request, events) in zip(server.delivered, arrays) {
            let ids = events.compactMap(\.eventID)
            let expected = ids.count == 1 ? ids[0] : "\(ids.first ?? "?")..\(ids.last ?? "?")"
            #expect(request.headers["idempotency-key"] == expected)
        }
    }

    @Test func templatesAndTheSlackPreset() async throws {
        let server = try await HookServer.start()
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_template")
        defer { db.drop() }
        try db.sql("CREATE TABLE sensors (id int PRIMARY KEY, device text, temp float8)")
        let pipe = try InProcessPipe(
            database: db, name: "http_template", tables: ["public.sensors"],
            sinks: [
                try httpSink(
                    "url: \"\(server.url)\", preset: slack, template: \"sensor {{ .after.device }} is at {{ .after.temp }} ({{ .op }} on {{ .source.table }})\""
                )
            ])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO sensors VALUES (1, 'boiler \"A\"', 81.5)")
        try await waitFor { server.delivered.count >= 1 }
        try await pipe.stop()
        let body = try #require(json(server.delivered[0].body) as? [String: Any])
        #expect(body["text"] as? String == "sensor boiler \"A\" is at 81.5 (insert on sensors)")
    }

    @Test func oauth2TokenIsFetchedOnceAndSent() async throws {
        var behaviour = HookServer.Behaviour()
        behaviour.requireToken = true
        let server = try await HookServer.start(behaviour)
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_oauth")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let pipe = try InProcessPipe(
            database: db, name: "http_oauth", tables: ["public.t"],
            sinks: [
                try httpSink(
                    "url: \"\(server.url)\", oauth2: {client_key: pgbridge, client_secret: s3cret, token_url: \"\(server.tokenURL)\", scopes: [events.write]}"
                )
            ])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO t SELECT generate_series(1, 3)")
        try await waitFor { server.delivered.count >= 3 }
        try await pipe.stop()
        #expect(server.received.allSatisfy { $0.headers["authorization"] == "Bearer tok-1" })
        #expect(server.tokenRequests.count == 1)
        #expect(server.tokenRequests.first?.contains("scope=events.write") == true)
    }

    @Test func serviceUnavailableIsRetriedUntilTheEndpointRecovers() async throws {
        var behaviour = HookServer.Behaviour()
        behaviour.failures = 4
        behaviour.retryAfter = "0"
        let server = try await HookServer.start(behaviour)
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_503")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let pipe = try InProcessPipe(
            database: db, name: "http_503", tables: ["public.t"], sinks: [try httpSink("url: \"\(server.url)\"")])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO t SELECT generate_series(1, 3)")
        try await waitFor { server.delivered.count >= 3 }
        try await pipe.stop()
        #expect(server.received.filter { $0.status == 503 }.count == 4)
        let ids = server.delivered.compactMap { (json($0.body) as? [String: Any])?.after?["id"] as? Int }
        #expect(ids == [1, 2, 3])
        #expect(pipe.deadLetters().isEmpty)
    }

    @Test func badRequestGoesToDeadLetterAndThePipeContinues() async throws {
        var behaviour = HookServer.Behaviour()
        behaviour.rejectMarker = "poison"
        let server = try await HookServer.start(behaviour)
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_400")
        defer { db.drop() }
        try db.sql("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        let pipe = try InProcessPipe(
            database: db, name: "http_400", tables: ["public.notes"], sinks: [try httpSink("url: \"\(server.url)\"")])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO notes VALUES (1, 'fine'), (2, 'poison'), (3, 'fine too')")
        try await waitFor { server.delivered.count >= 2 }
        let letters = try await EventFile.waitFor(pipe.deadLetterPath) { !$0.isEmpty }
        try await pipe.stop()
        #expect(server.delivered.compactMap { (json($0.body) as? [String: Any])?.after?["id"] as? Int } == [1, 3])
        #expect(letters.count == 1)
        #expect(letters.first?["reason"] as? String == "HTTP 400: bad event: rejected by the test receiver")
        #expect(letters.first?["attempts"] as? Int == 1)
        #expect((letters.first?["event"] as? [String: Any])?.after?["id"] as? Int == 2)
    }

    @Test func redirectsAreNotFollowed() async throws {
        var behaviour = HookServer.Behaviour()
        behaviour.failures = 1
        behaviour.failureStatus = 301
        let server = try await HookServer.start(behaviour)
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_301")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let pipe = try InProcessPipe(
            database: db, name: "http_301", tables: ["public.t"], sinks: [try httpSink("url: \"\(server.url)\"")])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
        // A loaded full run can take a while to start the pipe and deliver.
        let letters = try await EventFile.waitFor(pipe.deadLetterPath, timeout: .seconds(90)) { !$0.isEmpty }
        try await waitFor { server.delivered.count >= 1 }
        try await pipe.stop()
        #expect((letters.first?["reason"] as? String)?.hasPrefix("HTTP 301: redirect") == true, "\(letters)")
        #expect(server.received.count == 2)  // the 301 was not followed
    }

    @Test func parallelLanesKeepPerKeyOrder() async throws {
        let server = try await HookServer.start()
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_parallel")
        defer { db.drop() }
        try db.sql("CREATE TABLE counters (id int PRIMARY KEY, n int)")
        let pipe = try InProcessPipe(
            database: db, name: "http_parallel", tables: ["public.counters"],
            sinks: [try httpSink("url: \"\(server.url)\", parallelism: 4")])
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO counters SELECT g, 0 FROM generate_series(1, 20) g")
        for _ in 1...10 { try db.sql("UPDATE counters SET n = n + 1") }
        try await waitFor { server.delivered.count >= 220 }
        try await pipe.stop()
        var last: [Int: Int] = [:]
        var violations = 0
        for request in server.delivered {
            guard let event = json(request.body) as? [String: Any], let id = event.after?["id"] as? Int,
                let n = event.after?["n"] as? Int
            else {
                Issue.record("an unparsable body: \(request.body.prefix(200))")
                continue
            }
            if let previous = last[id], n <= previous { violations += 1 }
            last[id] = n
        }
        #expect(server.delivered.count == 220)
        #expect(violations == 0)
        #expect(last.count == 20, "\(last.count) keys parsed")
        #expect(last.values.allSatisfy { $0 == 10 })
    }

    @Test func cloudEventsInBinaryAndStructuredMode() async throws {
        let server = try await HookServer.start()
        defer { Task { await server.stop() } }
        let db = try TestDatabase(prefix: "http_ce")
        defer { db.drop() }
        try db.sql("CREATE TABLE devices (id int PRIMARY KEY, name text)")
        let transform = EventTransform(pipe: "http_ce", processors: [], format: .cloudevents, version: "test")
        let pipe = try InProcessPipe(
            database: db, name: "http_ce", tables: ["public.devices"],
            sinks: [
                try httpSink("url: \"\(server.url)\", content_mode: binary", format: .cloudevents),
                PipeSink(
                    name: "structured",
                    sink: try HTTPSink(
                        config: HTTPSinkConfig(url: server.url + "?mode=structured"), format: .cloudevents,
                        logger: InProcessPipe.testLogger)),
            ], transform: transform)
        try await pipe.startStreaming(db)
        try db.sql("INSERT INTO devices VALUES (7, 'boiler')")
        try await waitFor { server.delivered.count >= 2 }
        try await pipe.stop()
        let binary = try #require(server.delivered.first { $0.headers["ce-id"] != nil })
        #expect(binary.headers["ce-specversion"] == "1.0")
        #expect(binary.headers["ce-type"] == "io.pgbridge.change.insert")
        #expect(binary.headers["ce-source"] == "/pgbridge/\(db.name)/http_ce")
        #expect(binary.headers["ce-subject"] == "public.devices")
        #expect(binary.headers["content-type"] == "application/json")
        let data = try #require(json(binary.body) as? [String: Any])
        #expect(data.after?["name"] as? String == "boiler" && data.eventID == binary.headers["ce-id"])
        let structured = try #require(server.delivered.first { $0.headers["ce-id"] == nil })
        #expect(structured.headers["content-type"] == "application/cloudevents+json")
        let envelope = try #require(json(structured.body) as? [String: Any])
        #expect(envelope["specversion"] as? String == "1.0" && envelope["id"] as? String == binary.headers["ce-id"])
        #expect((envelope["data"] as? [String: Any])?.after?["id"] as? Int == 7)
    }
}
