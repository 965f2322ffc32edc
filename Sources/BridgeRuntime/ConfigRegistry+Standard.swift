import BridgeCore
import FileSink
import HTTPSink
import KafkaSink
import RabbitMQSink
import RedisSink

extension ConfigRegistry {
    /// Every sink kind pgbridge ships, each registered by its own module.
    public static let standard = ConfigRegistry(sinks: [
        FileSink.registration, KafkaSink.registration, RabbitMQSink.registration, RedisSink.registration,
        HTTPSink.registration,
    ])
}
