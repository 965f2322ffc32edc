import Foundation
import Testing

extension KafkaClusterSuites {
    /// What the admin token allows: pipes created through the HTTP API cannot make pgbridge run a
    /// command, load a library, read a file or write outside state_dir; tuning still works.
    @Suite(
        "Pipes created through the API stay inside pgbridge",
        .enabled(if: TestEnvironment.hasBinary && KafkaCLI.brokers != nil))
    struct APIPipeTrustTests {
        @Test func unsafeSettingsAreRefusedAndTuningPropertiesWork() async throws {
            let db = try TestDatabase(prefix: "api_trust")
            defer { db.drop() }
            try db.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
            let directory = try TestEnvironment.scratchDirectory("api-\(db.name)")
            #expect(try await BridgeProcess.run(["setup", "--url", db.url], directory: directory).status == 0)
            let config = try ConfigFile.writeWithAPI(directory: directory, url: db.url)
            let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
            defer { bridge.kill(SIGKILL) }
            let port = try await APIClient.waitForPort(bridge)
            let api = APIClient(base: "http://127.0.0.1:\(port)", token: HTTPAPITests.adminToken)
            let brokers = try #require(KafkaCLI.brokers)
            let marker = "\(directory)/pwned"
            let source = #""source": {"tables": ["public.items"], "slot": "trust_\#(db.name)"}"#
            let refused: [(String, String)] = [
                (
                    #"{"kind": "kafka", "brokers": "\#(brokers)", "properties": {"sasl.kerberos.kinit.cmd": "touch \#(marker)"}}"#,
                    "sinks[0].properties.sasl.kerberos.kinit.cmd"
                ),
                (
                    #"{"kind": "kafka", "brokers": "\#(brokers)", "properties": {"plugin.library.paths": "\#(marker).so"}}"#,
                    "sinks[0].properties.plugin.library.paths"
                ),
                (
                    #"{"kind": "kafka", "brokers": "\#(brokers)", "properties": {"ssl.ca.location": "/etc/shadow"}}"#,
                    "sinks[0].properties.ssl.ca.location"
                ),
                (#"{"kind": "file", "path": "/tmp/pgbridge-escape.jsonl"}"#, "sinks[0].path"),
            ]
            for (sink, key) in refused {
                let reply = try await api.request(
                    .POST, "/v1/pipes", body: #"{"name": "bad", \#(source), "sinks": [\#(sink)]}"#)
                #expect(reply.status == 422, "\(sink): \(reply.status) \(reply.body)")
                #expect(reply.body.contains(key), "\(reply.body)")
            }
            #expect(!FileManager.default.fileExists(atPath: marker))
            #expect(!FileManager.default.fileExists(atPath: "/tmp/pgbridge-escape.jsonl"))

            let topic = "trust_\(db.name)"
            let created = try await api.request(
                .POST, "/v1/pipes",
                body: #"""
                    {"name": "tuned", \#(source),
                     "sinks": [{"kind": "kafka", "brokers": "\#(brokers)", "topic": "\#(topic)",
                                "properties": {"linger.ms": "1", "compression.type": "lz4", "acks": "all"}},
                               {"kind": "file", "path": "tuned.jsonl"}]}
                    """#)
            #expect(created.status == 201, "\(created.body)")
            try await waitForSlot(db, "trust_\(db.name)")
            try db.sql("INSERT INTO items VALUES (1, 'tuned')")
            let messages = try await KafkaCLI.waitForMessages(topic, count: 1)
            #expect(messages.count == 1 && messages.first?.value.contains("\"tuned\"") == true)
            let written = try await EventFile.waitFor("\(directory)/state/tuned.jsonl") { !$0.isEmpty }
            #expect(written.first?.after?["name"] as? String == "tuned")
        }
    }
}
