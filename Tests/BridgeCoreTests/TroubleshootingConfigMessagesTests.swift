import BridgeRuntime
import Foundation
import Testing

@testable import BridgeCore

/// The configuration messages of docs/troubleshooting.md, each produced by the input the page
/// describes, word for word (`TroubleshootingDocTests` checks that every listed message is
/// asserted by some test).
@Suite("Troubleshooting: configuration messages")
struct TroubleshootingConfigMessagesTests {
    static let postgres = "postgres: {url: 'postgresql://h/d'}\n"
    static let pipe = "pipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}]}]\n"

    func message(_ yaml: String, environment: [String: String] = [:]) -> String {
        do {
            _ = try BridgeConfig.parse(yaml: yaml, registry: .standard, environment: environment)
            return "parsed"
        } catch let error as ConfigError {
            return "\(error.path): \(error.message)"
        } catch {
            return "not a ConfigError: \(error)"
        }
    }

    static let fileCases: [(yaml: String, expected: String)] = [
        ("postgres: {url: x\npipes: [", ": malformed YAML: "),
        ("postgres: postgresql://h/d\n" + pipe, "postgres: expected a mapping, got a string"),
        (
            "postgres: {url: \"postgresql://u:${DB_PASS}@h/d\"}\n" + pipe,
            "postgres.url: environment variable DB_PASS is not set: export it or write ${DB_PASS:-default}"
        ),
        (postgres, "pipes: missing: add at least one pipe (or an api section to create them at run time)"),
        (
            postgres
                + "pipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}]}, {name: p, source: {tables: [u], slot: other}, sinks: [{kind: file, path: o}]}]",
            "pipes[1]: pipe name 'p' is used twice: pipe names must be unique"
        ),
        (
            postgres
                + "pipes: [{name: p, source: {tables: [t], slot: s}, sinks: [{kind: file, path: o}]}, {name: q, source: {tables: [u], slot: s}, sinks: [{kind: file, path: o}]}]",
            "pipes[1]: slot 's' is also used by pipe 'p': each pipe needs its own slot"
        ),
        (postgres + "api: {admin_token: short}", "api.admin_token: too short: use at least 16 random characters"),
        (postgres + "api: {jwt_secret: tooshort}", "api.jwt_secret: too short for HS256: use at least 32 bytes"),
        (postgres + "wire: {listen: \"127.0.0.1:6433\"}", "wire: missing users: postgres_fdw logs in with a password"),
        (
            postgres
                + "pipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}], dead_letter: {kind: http, url: \"http://h\"}}]",
            "pipes[0].dead_letter.kind: unknown dead-letter kind 'http'; expected file, table, kafka, rabbitmq or redis"
        ),
        (
            postgres
                + "pipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}], dead_letter: {kind: redis, url: \"redis://h\", mode: pubsub}}]",
            "pipes[0].dead_letter.mode: a Redis dead-letter target must be a stream (mode: stream)"
        ),
    ]

    @Test(arguments: fileCases)
    func fileMessages(yaml: String, expected: String) {
        let actual = message(yaml)
        #expect(actual.hasPrefix(expected), "\(actual)")
    }

    @Test func apiPipeMessages() throws {
        let stateDirectory = NSTemporaryDirectory() + "pgbridge-messages-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: stateDirectory) }
        func message(_ sinks: String) -> String {
            do {
                _ = try BridgeConfig.parsePipe(
                    text:
                        #"{"name": "p", "source": {"tables": ["public.t"]}, "sinks": \#(sinks)}"#,
                    registry: .standard, trust: .api(stateDirectory: stateDirectory))
                return "parsed"
            } catch {
                return "\(error)"
            }
        }
        let property = message(
            #"[{"kind": "kafka", "brokers": "k:9092", "properties": {"sasl.oauthbearer.token.endpoint.url": "http://x"}}]"#
        )
        #expect(
            property.contains(
                "librdkafka property sasl.oauthbearer.token.endpoint.url is not allowed in a pipe created through the API"
            ),
            "\(property)")
        let file = message(#"[{"kind": "file", "path": "/etc/cron.d/x"}]"#)
        #expect(
            file.contains(
                "/etc/cron.d/x is outside state_dir (\(stateDirectory)): a pipe created through the API may only write files "
            ), "\(file)")
    }
}
