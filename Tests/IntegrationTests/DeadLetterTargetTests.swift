import Foundation
import Testing

extension KafkaClusterSuites {
    /// Rejected events through the binary to each network dead-letter target, and the file
    /// fallback for a record the target refuses for good. A Redis hash mirror rejects the rows
    /// whose key holds a string (WRONGTYPE, not retriable).
    @Suite(
        "Dead-letter targets through the binary",
        .enabled(
            if: TestEnvironment.hasBinary && TestEnvironment.redisURL != nil && TestEnvironment.rabbitMQURL != nil
                && KafkaCLI.brokers != nil))
    struct DeadLetterTargetTests {
        @Test(arguments: ["kafka", "rabbitmq", "redis"])
        func rejectedEventsReachTheTarget(kind: String) async throws {
            let redisURL = try #require(TestEnvironment.redisURL)
            let db = try TestDatabase(prefix: "dl_\(kind)")
            defer { db.drop() }
            try db.sql("CREATE TABLE accounts (id int PRIMARY KEY, plan text)")
            let directory = try TestEnvironment.scratchDirectory("dl-\(kind)")
            let prefix = "test:\(db.name)"
            for id in [2, 4] { _ = try RedisCLI.run(redisURL, ["SET", "\(prefix):accounts:\(id)", "not a hash"]) }
            let target: String
            switch kind {
            case "kafka":
                // Records over 3000 bytes are too large for the target: they go to the file.
                try KafkaCLI.control("topic dl.\(db.name) 1")
                target =
                    "{kind: kafka, brokers: \"\(try #require(KafkaCLI.brokers))\", topic: dl.\(db.name), properties: {message.max.bytes: \"3000\"}}"
            case "rabbitmq":
                target = "{kind: rabbitmq, url: \"\(try #require(TestEnvironment.rabbitMQURL))\", queue: dl.\(db.name)}"
            default:
                target = "{kind: redis, url: \"\(redisURL)\", mode: stream, key: \"\(prefix):dead\"}"
            }
            let config = "\(directory)/pgbridge.yaml"
            try """
            postgres: {url: "\(db.url)"}
            state_dir: \(directory)/state
            pipes:
              - name: accounts
                source: {tables: [public.accounts], slot: \(db.name), publication: \(db.name), status_interval: 1s}
                sinks:
                  - {kind: redis, name: mirror, url: "\(redisURL)", mode: hash, key: "\(prefix):{table}:{key}", retries: 0}
                dead_letter: \(target)
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
            defer { bridge.kill(SIGKILL) }  // also when an expectation throws first
            try await waitForSlot(db, db.name)
            try db.sql(
                "INSERT INTO accounts VALUES (1, 'free'), (2, 'pro'), (3, 'pro'), (4, repeat('x', 5000)), (5, 'sentinel')"
            )
            try await waitFor("the sentinel row in Redis", timeout: .seconds(60)) {
                try RedisCLI.hash(redisURL, "\(prefix):accounts:5")["plan"] == "sentinel"
            }

            var letters: [[String: Any]]
            let fallback = "\(directory)/state/accounts.dead_letters.jsonl"
            switch kind {
            case "kafka":
                letters = try await KafkaCLI.waitForMessages("dl.\(db.name)", count: 1).compactMap {
                    try JSONSerialization.jsonObject(with: Data($0.value.utf8)) as? [String: Any]
                }
                let refused = try await EventFile.waitFor(fallback) { $0.count >= 1 }
                #expect(refused.compactMap { ($0["event"] as? [String: Any])?.after?["id"] as? Int } == [4])
                #expect(
                    bridge.stderr.contains("dead-letter target ")
                        && bridge.stderr.contains("refused 1 records for good (")
                        && bridge.stderr.contains("): writing them to file:\(fallback)"),
                    "\(bridge.stderr.suffix(2000))")
            case "rabbitmq":
                letters = try await AMQPCLI.consume(
                    try #require(TestEnvironment.rabbitMQURL), queue: "dl.\(db.name)", count: 2, timeout: .seconds(30))
            default:
                letters = try await RedisCLI.waitForStream(redisURL, "\(prefix):dead", count: 2)
            }
            bridge.kill(SIGTERM)
            #expect(try await bridge.waitForExit() == 0, "\(bridge.stderr.suffix(2000))")

            let expected = kind == "kafka" ? [2] : [2, 4]
            #expect(letters.compactMap { ($0["event"] as? [String: Any])?.after?["id"] as? Int } == expected)
            for letter in letters {
                #expect(letter["pipe"] as? String == "accounts" && letter["sink"] as? String == "mirror", "\(letter)")
                #expect((letter["reason"] as? String)?.contains("WRONGTYPE") == true, "\(letter)")
            }
            if kind != "kafka" {
                #expect(EventFile.read(fallback).isEmpty, "nothing was refused by the target")
            }
            #expect(try RedisCLI.hash(redisURL, "\(prefix):accounts:3") == ["id": "3", "plan": "pro"])
        }
    }
}
