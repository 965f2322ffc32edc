import BridgeCore
import FileSink
import HTTPSink
import KafkaSink
import KafkaSource
import PostgresSink
import Processing
import RabbitMQSink
import RabbitMQSource
import RedisSink
import RedisSource

extension ConfigRegistry {
    /// Every sink and message source kind pgbridge ships, each registered by its own module,
    /// and the filter language of `Processing`.
    public static let standard = ConfigRegistry(
        sinks: [
            FileSink.registration, KafkaSink.registration, RabbitMQSink.registration, RedisSink.registration,
            HTTPSink.registration, PostgresSink.registration,
        ],
        sources: [KafkaSource.registration, RabbitMQSource.registration, RedisSource.registration],
        filterLanguage: FilterExpression.language)
}
