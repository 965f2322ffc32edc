import BridgeRuntime
import Testing

@testable import BridgeCore

@Suite("Wire configuration")
struct WireConfigTests {
    let base = "postgres: {url: \"postgresql://u@127.0.0.1/db\"}\n"

    @Test func parsesTheWireSectionWithoutPipes() throws {
        let config = try BridgeConfig.parse(
            yaml: base + """
                wire:
                  listen: 127.0.0.1:6433
                  users: {bridge: "${WIRE_PASSWORD}"}
                  kafka: {brokers: "k1:9092,k2:9092", topics: [sensor_readings, {name: raw, value: text}]}
                  redis: {url: "redis://127.0.0.1:6379/0", streams: [sensor]}
                  rabbitmq: {url: "amqp://guest:guest@127.0.0.1:5672/", queues: [alerts], exchange: events}
                """, registry: .standard, environment: ["WIRE_PASSWORD": "a-wire-password"])
        let wire = try #require(config.wire)
        #expect(wire.host == "127.0.0.1" && wire.port == 6433)
        #expect(wire.users == ["bridge": "a-wire-password"])
        #expect(
            wire.kafka?.topics == [WireKafkaTopic(name: "sensor_readings"), WireKafkaTopic(name: "raw", value: .text)])
        #expect(wire.kafka?.connection.brokers == "k1:9092,k2:9092")
        #expect(wire.redis?.streams == ["sensor"])
        #expect(wire.rabbitmq?.queues == ["alerts"] && wire.rabbitmq?.exchange == "events")
        #expect(wire.pipes && config.pipes.isEmpty)
        #expect(!"\(wire)".contains("a-wire-password"))
    }

    @Test func rejectsIncompleteOrUnsafeSettings() {
        let cases: [(String, String)] = [
            ("wire: {listen: \"127.0.0.1:6433\"}", "missing users"),
            ("wire: {users: {bridge: short}}", "too short"),
            ("wire: {users: {bridge: long-enough-1}, kafka: {brokers: k:9092}}", "wire.kafka"),
            ("wire: {users: {bridge: long-enough-1}, kafka: {brokers: k:9092, topics: [a, a]}}", "listed twice"),
            ("wire: {users: {bridge: long-enough-1}, redis: {url: \"http://x\", streams: [s]}}", "wire.redis.url"),
            ("wire: {users: {bridge: long-enough-1}, rabbitmq: {url: \"amqp://h/\", queues: []}}", "empty"),
            ("wire: {users: {bridge: long-enough-1}, topics: [a]}", "unknown key"),
        ]
        expectConfigErrors(cases, base: base)
    }
}
