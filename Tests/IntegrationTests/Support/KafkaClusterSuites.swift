import Testing

/// The suites that produce to the shared Kafka mock cluster run one at a time: some inject
/// cluster-wide produce errors (`errors 0 29 2`), which would hit the others' messages.
@Suite("Kafka mock cluster", .serialized)
enum KafkaClusterSuites {}
