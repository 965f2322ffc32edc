import BridgeRuntime
import FileSink
import Foundation
import Testing

@testable import BridgeCore

/// The admin token (pipes created through the API) must not mean code execution or file access
/// on pgbridge's host; the operator's file keeps its freedom, with a switch for the unsafe part.
@Suite("Unsafe sink settings")
struct UnsafePropertiesTests {
    static let stateDirectory = NSTemporaryDirectory() + "pgbridge-trust-\(UUID().uuidString)"

    func apiPipe(_ sinks: String, deadLetter: String = "") throws -> PipeConfig {
        try FileManager.default.createDirectory(atPath: Self.stateDirectory, withIntermediateDirectories: true)
        return try BridgeConfig.parsePipe(
            text: """
                {"name": "p", "source": {"tables": ["public.t"]}, "sinks": \(sinks)\(deadLetter)}
                """, registry: .standard, trust: .api(stateDirectory: Self.stateDirectory))
    }

    func apiError(_ sinks: String, deadLetter: String = "") -> String {
        do {
            _ = try apiPipe(sinks, deadLetter: deadLetter)
            return "parsed"
        } catch {
            return "\(error)"
        }
    }

    @Test func theAPIRefusesPropertiesThatRunCommandsLoadCodeOrReadFiles() {
        for key in [
            "sasl.kerberos.kinit.cmd", "plugin.library.paths", "ssl.engine.location", "ssl.engine.id",
            "ssl.ca.location", "ssl.keystore.location", "sasl.kerberos.keytab",
        ] {
            let error = apiError(#"[{"kind": "kafka", "brokers": "k:9092", "properties": {"\#(key)": "x"}}]"#)
            #expect(error.contains("sinks[0].properties.\(key)") && error.contains("never allowed"), "\(key): \(error)")
        }
        // Outside the tuning allow-list (an OAuth token endpoint would make pgbridge call any URL).
        let error = apiError(
            #"[{"kind": "kafka", "brokers": "k:9092", "properties": {"sasl.oauthbearer.token.endpoint.url": "http://x"}}]"#
        )
        #expect(error.contains("sasl.oauthbearer.token.endpoint.url is not allowed") && error.contains("linger.ms"))
        #expect(
            apiError(#"[{"kind": "kafka", "brokers": "k:9092", "allow_unsafe_properties": true}]"#).contains(
                "allow_unsafe_properties: not allowed in a pipe created through the API"))
        // Dead-letter targets are sinks too.
        let deadLetter = apiError(
            #"[{"kind": "file", "path": "out.jsonl"}]"#,
            deadLetter:
                #", "dead_letter": {"kind": "kafka", "brokers": "k:9092", "properties": {"plugin.library.paths": "/tmp/x.so"}}"#
        )
        #expect(deadLetter.contains("dead_letter.properties.plugin.library.paths"), "\(deadLetter)")
    }

    @Test func theAPIKeepsTuningProperties() throws {
        let pipe = try apiPipe(
            #"[{"kind": "kafka", "brokers": "k:9092", "properties": {"linger.ms": "5", "compression.type": "lz4"}}]"#)
        guard let kafka = pipe.sinks[0].settings as? KafkaSinkConfig else {
            Issue.record("not kafka")
            return
        }
        #expect(kafka.properties == ["linger.ms": "5", "compression.type": "lz4"])
    }

    @Test func theAPIConfinesFilePathsToTheStateDirectory() throws {
        for path in ["/etc/cron.d/pwn", "../escape.jsonl", "a/../../escape.jsonl", "-"] {
            let error = apiError(#"[{"kind": "file", "path": "\#(path)"}]"#)
            #expect(error.contains("sinks[0].path") && error.contains("outside state_dir"), "\(path): \(error)")
            let deadLetter = apiError(
                #"[{"kind": "file", "path": "ok.jsonl"}]"#,
                deadLetter: #", "dead_letter": {"kind": "file", "path": "\#(path)"}"#)
            #expect(
                deadLetter.contains("dead_letter.path") && deadLetter.contains("outside state_dir"), "\(deadLetter)")
        }
        // A symbolic link inside state_dir that points out of it does not help.
        let link = (Self.stateDirectory as NSString).appendingPathComponent("link")
        try? FileManager.default.removeItem(atPath: link)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc")
        #expect(apiError(#"[{"kind": "file", "path": "link/pwn"}]"#).contains("outside state_dir"))
        let pipe = try apiPipe(#"[{"kind": "file", "path": "events/out.jsonl"}]"#)
        guard let file = pipe.sinks[0].settings as? FileSinkConfig else {
            Issue.record("not a file sink")
            return
        }
        let base = URL(fileURLWithPath: Self.stateDirectory).resolvingSymlinksInPath().path
        #expect(file.path == base + "/events/out.jsonl")
    }

    @Test func theConfigurationFileNeedsASwitchForCommandsAndCode() throws {
        let base = """
            postgres: {url: "postgresql://x@h/db"}
            pipes:
              - name: p
                source: {tables: [t]}
                sinks:
            """
        expectConfigErrors(
            [
                (
                    #"    - {kind: kafka, brokers: "k:9092", properties: {sasl.kerberos.kinit.cmd: "kinit -k"}}"#,
                    "pipes[0].sinks[0].properties.sasl.kerberos.kinit.cmd: librdkafka property sasl.kerberos.kinit.cmd runs a shell command: it is refused unless the sink sets allow_unsafe_properties: true"
                ),
                (
                    #"    - {kind: kafka, brokers: "k:9092", properties: {plugin.library.paths: "x.so"}}"#,
                    "plugin.library.paths loads a library"
                ),
            ], base: base + "\n")
        let allowed = try BridgeConfig.parse(
            yaml: base + """

                    - {kind: kafka, brokers: "k:9092", allow_unsafe_properties: true,
                       properties: {sasl.kerberos.kinit.cmd: "kinit -k", ssl.ca.location: /etc/ssl/ca.pem}}
                    - {kind: file, path: /var/log/anywhere.jsonl}
                """, registry: .standard)
        #expect(allowed.pipes[0].sinks.count == 2)
        // Reading a file the operator names stays allowed without the switch.
        _ = try BridgeConfig.parse(
            yaml: base
                + "\n    - {kind: kafka, brokers: \"k:9092\", properties: {ssl.ca.location: /etc/ssl/ca.pem}}",
            registry: .standard)
    }
}
