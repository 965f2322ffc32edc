import BridgeRuntime
import Foundation
import Testing
import Yams

@testable import BridgeCore

/// Docker does not run on the project's machines: the Dockerfile and docker-compose.yml are
/// checked statically against what pgbridge's configuration needs.
@Suite("Container and compose files")
struct DeploymentFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    static func compose() throws -> [String: Any] {
        try #require(try Yams.load(yaml: try text("docker-compose.yml")) as? [String: Any])
    }

    static func service(_ name: String) throws -> [String: Any] {
        let services = try #require(try compose()["services"] as? [String: Any])
        return try #require(services[name] as? [String: Any], "service \(name) is missing")
    }

    /// `KEY: value` of a service, with compose's `${VAR:?message}` / `${VAR:-default}` replaced
    /// by the example values of .env.example.
    static func environment(_ service: [String: Any]) throws -> [String: String] {
        let example = try text(".env.example").split(separator: "\n").filter { !$0.hasPrefix("#") }
            .reduce(into: [String: String]()) { values, line in
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
            }
        var result: [String: String] = [:]
        for (key, value) in service["environment"] as? [String: Any] ?? [:] {
            var text = "\(value)"
            while let match = text.firstMatch(of: /\$\{([A-Z_]+)(:[?-][^}]*)?\}/) {
                let name = String(match.1)
                let replacement = try #require(example[name], "\(name) is not in .env.example")
                text.replaceSubrange(match.range, with: replacement)
            }
            result[key] = text
        }
        return result
    }

    @Test func composeRunsTheStackAndPgbridgeAsASidecar() throws {
        let services = try #require(try Self.compose()["services"] as? [String: Any])
        #expect(Set(services.keys) == ["timescaledb", "kafka", "rabbitmq", "redis", "pgbridge"])
        #expect(services["zookeeper"] == nil)

        let database = try Self.service("timescaledb")
        #expect((database["image"] as? String)?.hasPrefix("timescale/timescaledb") == true)
        let command = try #require(database["command"] as? [String]).joined(separator: " ")
        #expect(command.contains("wal_level=logical") && command.contains("max_slot_wal_keep_size="))
        let initScript = try #require(
            (database["volumes"] as? [String])?.first { $0.contains("docker-entrypoint-initdb.d") })
        #expect(
            FileManager.default.fileExists(
                atPath: Self.root.appendingPathComponent(String(initScript.split(separator: ":")[0])).path))

        let kafka = try Self.environment(try Self.service("kafka"))
        #expect(kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft mode")
        let kafkaVolumes = try #require(try Self.service("kafka")["volumes"] as? [String])
        #expect(
            kafkaVolumes.contains { $0.hasSuffix(":\(kafka["KAFKA_LOG_DIRS"] ?? "?")") },
            "the topics live in the volume")
        let databaseCheck = try #require((database["healthcheck"] as? [String: Any])?["test"] as? [String])
        #expect(databaseCheck.joined(separator: " ").contains("-h 127.0.0.1"), "ready only once init.sql ran")
        #expect(kafka["KAFKA_ADVERTISED_LISTENERS"]?.contains("kafka:9092") == true)

        let bridge = try Self.service("pgbridge")
        let arguments = try #require(bridge["command"] as? [String])
        let configPath = try #require(arguments.firstIndex(of: "--config").map { arguments[$0 + 1] })
        let mounts = try #require(bridge["volumes"] as? [String])
        let configMount = try #require(
            mounts.first { $0.split(separator: ":").dropFirst().first.map(String.init) == configPath })
        let configFile = String(configMount.split(separator: ":")[0])
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(configFile).path))
        let dependencies = try #require(bridge["depends_on"] as? [String: Any])
        #expect(Set(dependencies.keys) == ["timescaledb", "kafka", "rabbitmq", "redis"])
        for name in dependencies.keys {
            #expect(try Self.service(name)["healthcheck"] != nil, "\(name) needs a healthcheck for depends_on")
        }
    }

    /// The mounted configuration parses with the environment compose gives pgbridge, names the
    /// services by their compose names and ports, and listens on the published ports.
    @Test func theMountedConfigurationMatchesTheServices() throws {
        let bridge = try Self.service("pgbridge")
        let environment = try Self.environment(bridge)
        let config = try BridgeConfig.parse(
            yaml: try Self.text("deploy/pgbridge.yaml"), registry: .standard, environment: environment)

        #expect(config.postgres.url.contains("@timescaledb:5432/"))
        let database = try Self.environment(try Self.service("timescaledb"))
        #expect(config.postgres.url.hasSuffix("/\(database["POSTGRES_DB"] ?? "?")"))
        #expect(config.postgres.url.contains(":\(database["POSTGRES_PASSWORD"] ?? "?")@"))
        let rabbit = try Self.environment(try Self.service("rabbitmq"))

        var kinds: Set<String> = []
        for pipe in config.pipes {
            for sink in pipe.sinks {
                switch sink.settings {
                case let kafka as KafkaSinkConfig:
                    kinds.insert(sink.kind)
                    #expect(kafka.brokers == "kafka:9092")
                case let rabbitmq as RabbitMQSinkConfig:
                    kinds.insert(sink.kind)
                    #expect(
                        rabbitmq.url.contains(
                            "\(rabbit["RABBITMQ_DEFAULT_USER"] ?? "?"):\(rabbit["RABBITMQ_DEFAULT_PASS"] ?? "?")@rabbitmq:5672"
                        ))
                case let redis as RedisSinkConfig:
                    kinds.insert(sink.kind)
                    #expect(redis.url.hasPrefix("redis://redis:6379"))
                default: break
                }
            }
        }
        #expect(kinds == ["kafka", "rabbitmq", "redis"], "an example pipe per sink")
        #expect(config.stateDirectory.hasPrefix("/var/lib/pgbridge"))
        let mounts = try #require(bridge["volumes"] as? [String])
        #expect(mounts.contains { $0.hasSuffix(":/var/lib/pgbridge") }, "the state directory is a volume")

        let ports = try #require(bridge["ports"] as? [String])
        let published = Set(ports.compactMap { $0.split(separator: ":").last.map(String.init) })
        let api = try #require(config.api)
        let wire = try #require(config.wire)
        #expect(published.contains("\(api.port)") && published.contains("\(wire.port)"))
        #expect(api.host == "0.0.0.0" && wire.host == "0.0.0.0", "reachable from outside the container")
        #expect(wire.kafka?.connection.brokers == "kafka:9092")
    }

    @Test func dockerfileBuildsWithSwiftAndRunsSlim() throws {
        let dockerfile = try Self.text("Dockerfile")
        let stages = dockerfile.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(stages.count == 2)
        #expect(stages.first?.contains("swift:") == true && stages.first?.contains("AS build") == true)
        #expect(stages.last?.contains("-slim") == true)
        for package in ["libpq5", "librdkafka1", "librabbitmq4", "libhiredis"] {
            #expect(dockerfile.contains(package), "the runtime needs \(package)")
        }
        #expect(dockerfile.contains("--static-swift-stdlib"))
        #expect(dockerfile.contains("COPY --from=build"))
        #expect(dockerfile.contains("USER pgbridge"))
        #expect(dockerfile.contains("EXPOSE 8080 6433"))
        // What the build copies exists, and the image runs the command compose gives it.
        for path in ["Package.swift", "Sources", "Tests", "sql"] {
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(path).path))
            #expect(dockerfile.contains("COPY \(path) "), "the build needs \(path): SwiftPM checks every target")
        }
        let healthcheck = try #require(
            (try Self.service("pgbridge")["healthcheck"] as? [String: Any])?["test"] as? [String])
        #expect(healthcheck.contains("curl") && dockerfile.contains(" curl"))
        #expect(try Self.text(".dockerignore").contains(".build"))
    }
}
