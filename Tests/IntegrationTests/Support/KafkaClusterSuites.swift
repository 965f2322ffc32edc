import Testing

/// The suites that use the shared Kafka mock cluster. They run in parallel: nothing here injects
/// broker errors or takes brokers down; the tests that do are `KafkaFaultTests`, on a cluster of
/// their own, one at a time.
@Suite("Kafka mock cluster")
enum KafkaClusterSuites {}
