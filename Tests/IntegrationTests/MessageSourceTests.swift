import AMQPClient
import BridgeCore
import Foundation
import Testing

/// `kind: rabbitmq` and `kind: redis` sources with the real pgbridge binary, against the real
/// brokers and PostgreSQL.
@Suite("RabbitMQ and Redis sources", .enabled(if: TestEnvironment.hasBinary))
struct MessageSourceTests {
    /// Writes `yaml` as the configuration in a new scratch directory; returns the directory and
    /// a launcher.
    static func setUp(_ name: String, _ yaml: (String) -> String) throws -> (
        directory: String, launch: () throws -> BridgeProcess
    ) {
        let directory = try TestEnvironment.scratchDirectory(name)
        let config = try ConfigFile.write(yaml(directory), in: directory)
        return (directory, { try BridgeProcess.run(config: config, directory: directory) })
    }

    /// RabbitMQ → Redis stream while the broker is stopped for 10 s and pgbridge is SIGKILLed
    /// once: every message reaches the stream (at least once), the queue is empty at the end,
    /// and a message that is not JSON is dead-lettered with the reason.
    @Test(.enabled(if: AMQPCLI.url2 != nil && AMQPCLI.control2 != nil && TestEnvironment.redisURL != nil))
    func rabbitMQIntoRedisAcrossAnOutageAndAKill() async throws {
        let rabbitURL = try #require(AMQPCLI.url2)
        let redisURL = try #require(TestEnvironment.redisURL)
        let id = UUID().uuidString.prefix(8).lowercased()
        let queue = "mqsrc.\(id)"
        let stream = "mqsrc:\(id)"
        defer { _ = try? RedisCLI.run(redisURL, ["DEL", stream]) }
        let (directory, launch) = try Self.setUp("mqsrc") { directory in
            """
            postgres: {url: "\(TestEnvironment.postgresURL ?? "")"}
            state_dir: \(directory)/state
            pipes:
              - name: mqsrc
                source: {kind: rabbitmq, url: "\(rabbitURL)", queue: \(queue), table: public.readings, prefetch: 400, batch_messages: 200}
                sinks:
                  - {name: stream, kind: redis, url: "\(redisURL)", key: "\(stream)"}
                dead_letter: {kind: file, path: \(directory)/dead_letters.jsonl}
            """
        }
        let total = 10_000
        func seen() throws -> (entries: Int, distinct: Set<Int>) {
            let events = try RedisCLI.streamEvents(redisURL, stream)
            return (events.count, Set(events.compactMap { ($0["after"] as? [String: Any])?["n"] as? Int }))
        }
        try await OutageLock.holding([.rabbitMQ2]) {
            let publisher = try AMQPCLI.client(rabbitURL)
            // The queue exists before pgbridge consumes it.
            try await AMQPCLI.publish(publisher, queue: queue, bodies: [Array("not json".utf8)])
            let producing = Task {
                for wave in 0..<40 {
                    let bodies = (wave * 250..<(wave + 1) * 250).map { n in
                        Array(#"{"n":\#(n),"device":"d\#(n % 20)"}"#.utf8)
                    }
                    // The broker may be stopped: publish the wave again once it is back (a
                    // message published twice is read twice; the check is on distinct numbers).
                    while true {
                        do {
                            try await AMQPCLI.publish(publisher, queue: queue, bodies: bodies)
                            break
                        } catch {
                            try await Task.sleep(for: .milliseconds(500))
                        }
                    }
                    try await Task.sleep(for: .milliseconds(150))
                }
            }
            var bridge = try launch()
            var logs: [String] = []
            try await waitFor("1,000 entries", timeout: .seconds(60)) { try seen().distinct.count >= 1000 }
            try await AMQPCLI.control("stop")
            try await Task.sleep(for: .seconds(10))
            try await AMQPCLI.control("start")
            try await waitFor("6,000 entries", timeout: .seconds(120)) { try seen().distinct.count >= 6000 }
            bridge.kill(SIGKILL)
            _ = try await bridge.waitForExit()
            logs.append(bridge.stderr)
            bridge = try launch()
            try await producing.value
            await publisher.close()
            try await waitFor("every message in the stream", timeout: .seconds(120)) {
                try seen().distinct.count >= total
            }
            try await Task.sleep(for: .seconds(1))
            bridge.kill(SIGTERM)
            #expect(try await bridge.waitForExit() == 0)
            logs.append(bridge.stderr)
            let (entries, distinct) = try seen()
            #expect(distinct == Set(0..<total), "every message, whatever the outage and the kill")
            #expect(entries >= total)
            #expect(try await AMQPCLI.ready(rabbitURL, queue: queue).isEmpty, "nothing left in the queue")
            #expect(
                logs[0].contains("rabbitmq source, queue \(queue)") && logs[0].contains("connecting again"),
                "the outage is logged with what happens next")
            let letters = EventFile.read("\(directory)/dead_letters.jsonl")
            #expect(letters.count >= 1 && letters.allSatisfy { $0["sink"] as? String == "source" }, "\(letters)")
            let letter = try #require(letters.first)
            #expect((letter["reason"] as? String)?.contains("not valid JSON") == true, "\(letter)")
            let record = try #require(letter["event"] as? [String: Any])
            #expect(record["payload"] as? String == "not json" && record["queue"] as? String == queue, "\(record)")
        }
    }

    /// A Redis stream into a hypertable (the TimescaleDB catalog fixture) applied by the key
    /// `[device, time]`: entries this consumer read before a restart are delivered first, and
    /// entries a crashed consumer left pending are claimed after `claim_after` and delivered;
    /// nothing stays pending.
    @Test(.enabled(if: TestEnvironment.redisURL != nil))
    func redisStreamIntoAHypertableClaimsWhatACrashedConsumerLeft() async throws {
        let redisURL = try #require(TestEnvironment.redisURL)
        let target = try TestDatabase(prefix: "redissrc")
        defer { target.drop() }
        try target.sql(TimescaleFixture.sql)
        try target.sql(
            """
            CREATE TABLE readings (time timestamptz NOT NULL, device text NOT NULL, value float8, PRIMARY KEY (device, time));
            SELECT _timescaledb_catalog.fixture_create_hypertable('readings');
            """)
        let stream = "redissrc:\(UUID().uuidString.prefix(8).lowercased())"
        defer { _ = try? RedisCLI.run(redisURL, ["DEL", stream]) }
        _ = try RedisCLI.run(redisURL, ["XGROUP", "CREATE", stream, "ingest", "0", "MKSTREAM"])
        let total = 3000
        let start = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01 00:00 UTC
        let format = ISO8601DateFormatter()
        var commands = ""
        for n in 0..<total {
            let time = format.string(from: start.addingTimeInterval(Double(n) * 60))
            commands += "XADD \(stream) * device d\(n % 10) time \(time) value \(Double(n) / 2)\n"
        }
        let file = try TestEnvironment.scratchDirectory("redissrc") + "/commands.txt"
        try commands.write(toFile: file, atomically: true, encoding: .utf8)
        let added = try TestEnvironment.shell("redis-cli -u '\(redisURL)' < '\(file)' > /dev/null")
        #expect(added.status == 0, "\(added.output)")
        // Another consumer takes 500 entries and crashes; pgbridge's own consumer name took 100
        // in an earlier run that never acknowledged them.
        _ = try RedisCLI.run(
            redisURL, ["XREADGROUP", "GROUP", "ingest", "crashed", "COUNT", "500", "STREAMS", stream, ">"])
        _ = try RedisCLI.run(
            redisURL, ["XREADGROUP", "GROUP", "ingest", "edge1", "COUNT", "100", "STREAMS", stream, ">"])
        #expect(try RedisCLI.run(redisURL, ["XPENDING", stream, "ingest"]).first == "600")
        let (_, launch) = try Self.setUp("redissrc") { directory in
            """
            postgres: {url: "\(TestEnvironment.postgresURL ?? "")"}
            state_dir: \(directory)/state
            pipes:
              - name: redissrc
                source: {kind: redis, url: "\(redisURL)", streams: ["\(stream)"], group: ingest, consumer: edge1, claim_after: 2s, table: public.readings, key: [device, time]}
                sinks:
                  - {name: readings, kind: postgres, url: "\(target.url)"}
            """
        }
        let bridge = try launch()
        try await waitFor("every entry applied", timeout: .seconds(60)) {
            (try? target.value("SELECT count(*) FROM readings")) == "\(total)"
        }
        try await waitFor("nothing pending", timeout: .seconds(30)) {
            try RedisCLI.run(redisURL, ["XPENDING", stream, "ingest"]).first == "0"
        }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        let log = bridge.stderr
        #expect(log.contains("entries this consumer (edge1) read before and never acknowledged"), "\(log)")
        #expect(log.contains("claimed 500 entries of stream \(stream)"), "\(log)")
        #expect(try target.value("SELECT count(*) FROM ONLY readings") == "0", "rows live in the chunks")
        #expect(try target.value("SELECT count(*) FROM _timescaledb_catalog.chunk") == "3", "one chunk per day")
        #expect(
            try target.value("SELECT value FROM readings WHERE device = 'd7' AND time = '2026-01-02 14:57+00'")
                == "1168.5")
        #expect(try target.value("SELECT (sum(value) * 2)::bigint FROM readings") == "\((0..<total).reduce(0, +))")
    }

    /// A message pipe through the HTTP API: created, its reading shown by `/v1/pipes/{name}`
    /// (messages, bytes, refused, the stream's lag and pending entries), stopped (nothing is
    /// read meanwhile: the lag grows), started again and dropped.
    @Test(.enabled(if: TestEnvironment.redisURL != nil))
    func aRedisPipeThroughTheAPI() async throws {
        let redisURL = try #require(TestEnvironment.redisURL)
        let stream = "redisapi:\(UUID().uuidString.prefix(8).lowercased())"
        defer { _ = try? RedisCLI.run(redisURL, ["DEL", stream]) }
        func add(_ range: Range<Int>) throws {
            for n in range {
                _ = try RedisCLI.run(redisURL, ["XADD", stream, "*", "device", "d\(n % 3)", "n", "\(n)"])
            }
        }
        try add(0..<30)
        _ = try RedisCLI.run(redisURL, ["XADD", stream, "*", "n", "no device"])
        // A database of its own: API pipes are stored there (pgbridge.pipes).
        let db = try TestDatabase(prefix: "redisapi")
        defer { db.drop() }
        let directory = try TestEnvironment.scratchDirectory("redisapi")
        #expect(try await BridgeProcess.run(["setup", "--url", db.url], directory: directory).status == 0)
        let config = try ConfigFile.writeWithAPI(directory: directory, url: db.url)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let api = APIClient(
            base: "http://127.0.0.1:\(try await APIClient.waitForPort(bridge))", token: HTTPAPITests.adminToken)
        let created = try await api.request(
            .POST, "/v1/pipes",
            body: """
                {"name": "redisapi", "source": {"kind": "redis", "url": "\(redisURL)", "streams": ["\(stream)"],
                 "table": "public.devices", "key": ["device"]},
                 "sinks": [{"kind": "file", "path": "redisapi.jsonl"}],
                 "dead_letter": {"kind": "file", "path": "redisapi-dead.jsonl"}}
                """)
        #expect(created.status == 201, "\(created.body)")
        #expect((created.json["source"] as? [String: Any])?["kind"] as? String == "redis")
        func reading() async throws -> [String: Any] {
            try await api.get("/v1/pipes/redisapi").json["source"] as? [String: Any] ?? [:]
        }
        func number(_ object: Any?, _ name: String) -> Int? { (object as? [String: Any])?[name] as? Int }
        var last: [String: Any] = [:]
        do {
            try await waitFor("31 messages read, none pending", timeout: .seconds(30)) {
                last = try await reading()
                return last["messages"] as? Int == 31 && number(last["pending"], stream) == 0
                    && number(last["lag"], stream) == 0
            }
        } catch {
            throw TestFailure("\(error); the pipe's source: \(last); log: \(bridge.stderr.suffix(3000))")
        }
        #expect(!last.isEmpty, "\(last)")
        let source = try await reading()
        #expect(source["refused"] as? Int == 1, "the entry without a device is dead-lettered: \(source)")
        #expect((source["bytes"] as? Int ?? 0) > 300, "\(source)")
        #expect(source["measured_at"] is String, "\(source)")
        let letters = try await EventFile.waitFor("\(directory)/state/redisapi-dead.jsonl") { !$0.isEmpty }
        #expect((letters.first?["reason"] as? String)?.contains("no field \"device\"") == true, "\(letters)")

        let stopped = try await api.request(.POST, "/v1/pipes/redisapi/stop")
        #expect(stopped.status == 200 && stopped.json["state"] as? String == "STOPPED", "\(stopped.body)")
        try add(30..<35)
        try await Task.sleep(for: .milliseconds(500))
        let info = try RedisCLI.run(redisURL, ["XINFO", "GROUPS", stream])
        let lag = info.firstIndex(of: "lag").map { info[$0 + 1] }
        #expect(lag == "5", "nothing is read while the pipe is stopped: \(info)")

        let started = try await api.request(.POST, "/v1/pipes/redisapi/start")
        #expect(started.status == 200, "\(started.body)")
        let events = try await EventFile.waitFor("\(directory)/state/redisapi.jsonl") { $0.count >= 35 }
        #expect(Set(events.compactMap { $0.after?["n"] as? String }) == Set((0..<35).map { "\($0)" }))
        #expect(
            events.allSatisfy {
                $0.key?["device"] != nil && (($0["source"] as? [String: Any])?["stream"] as? String) == stream
            })
        do {
            try await waitFor("the restarted pipe's reading", timeout: .seconds(30)) {
                last = try await reading()
                return last["messages"] as? Int == 5 && number(last["lag"], stream) == 0
            }
        } catch {
            throw TestFailure("\(error); the pipe's source: \(last); log: \(bridge.stderr.suffix(3000))")
        }

        let dropped = try await api.request(.DELETE, "/v1/pipes/redisapi")
        #expect(dropped.status == 200, "\(dropped.body)")
        #expect(try await api.get("/v1/pipes/redisapi").status == 404)
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }

    /// Least privilege: a Redis user allowed only XREADGROUP, XACK and XAUTOCLAIM on its
    /// streams (the group made by an administrator) reads everything; what it may not do
    /// (create the group, measure the lag) is a warning, not an outage.
    @Test(.enabled(if: TestEnvironment.redisURL != nil))
    func aRedisUserWithOnlyReadingRightsReads() async throws {
        let redisURL = try #require(TestEnvironment.redisURL)
        let id = UUID().uuidString.prefix(8).lowercased()
        let stream = "redisacl:\(id)"
        let user = "reader_\(id)"
        defer {
            _ = try? RedisCLI.run(redisURL, ["DEL", stream])
            _ = try? RedisCLI.run(redisURL, ["ACL", "DELUSER", user])
        }
        _ = try RedisCLI.run(
            redisURL,
            ["ACL", "SETUSER", user, "on", ">reader-secret", "~redisacl:*", "+xreadgroup", "+xack", "+xautoclaim"])
        _ = try RedisCLI.run(redisURL, ["XGROUP", "CREATE", stream, "readers", "0", "MKSTREAM"])
        for n in 0..<20 { _ = try RedisCLI.run(redisURL, ["XADD", stream, "*", "n", "\(n)"]) }
        let userURL = redisURL.replacingOccurrences(of: "redis://", with: "redis://\(user):reader-secret@")
        let (directory, launch) = try Self.setUp("redisacl") { directory in
            """
            postgres: {url: "\(TestEnvironment.postgresURL ?? "")"}
            state_dir: \(directory)/state
            pipes:
              - name: redisacl
                source: {kind: redis, url: "\(userURL)", streams: ["\(stream)"], group: readers}
                sinks: [{kind: file, path: \(directory)/events.jsonl}]
            """
        }
        let bridge = try launch()
        let events = try await EventFile.waitFor("\(directory)/events.jsonl") { $0.count >= 20 }
        #expect(Set(events.compactMap { $0.after?["n"] as? String }) == Set((0..<20).map { "\($0)" }))
        try await waitFor("nothing pending", timeout: .seconds(30)) {
            try RedisCLI.run(redisURL, ["XPENDING", stream, "readers"]).first == "0"
        }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
        let log = bridge.stderr
        #expect(log.contains("cannot create consumer group readers") && log.contains("NOPERM"), "\(log)")
        #expect(log.contains("cannot measure the streams' lag"), "\(log)")
        #expect(!log.contains("reader-secret"), "the password stays out of the log")
        #expect(!log.contains("connecting again"), "no reconnect loop: \(log)")
    }
}
