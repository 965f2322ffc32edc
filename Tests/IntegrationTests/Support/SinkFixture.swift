import BridgeCore
import BridgeRuntime

/// Sink settings for tests, read through the real configuration parser.
enum SinkFixture {
    /// Parses `{<fields>}` as the only sink of a pipe; returns it with fast retries.
    static func parse(_ fields: String, retries: Int, retryInterval: Duration = .milliseconds(50)) throws
        -> SinkConfig
    {
        let config = try BridgeConfig.parse(
            yaml: """
                postgres: {url: "postgresql://x@127.0.0.1/x"}
                pipes:
                  - name: p
                    source: {tables: [t]}
                    sinks: [{\(fields)}]
                """, registry: .standard)
        var sink = config.pipes[0].sinks[0]
        sink.delivery.retries = retries
        sink.delivery.retryInterval = retryInterval
        return sink
    }
}
