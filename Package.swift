// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "pgbridge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pgbridge", targets: ["pgbridge"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.0.0"),
        .package(url: "https://github.com/mattpolzin/OpenAPIKit", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        // hiredis.pc carries a flag SwiftPM rejects: linked by name instead.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CMalloc"),
        .target(
            name: "BridgeCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PostgresClient",
            dependencies: ["CLibPQ", "BridgeCore"],
            swiftSettings: strict),
        .target(
            name: "PostgresSource",
            dependencies: [
                "PostgresClient", "BridgeCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "FileSink",
            dependencies: ["BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "KafkaSource",
            dependencies: ["KafkaClient", "BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "RabbitMQSource",
            dependencies: ["AMQPClient", "BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "RedisSource",
            dependencies: ["RedisClient", "BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "KafkaSink",
            dependencies: ["KafkaClient", "BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "RabbitMQSink",
            dependencies: ["AMQPClient", "BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "PostgresSink",
            dependencies: ["PostgresClient", "BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "HTTPSink",
            dependencies: [
                "BridgeCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Client modules: each owns one C library and every connection to its system.
        .target(name: "RedisClient", dependencies: ["CHiredis", "BridgeCore"], swiftSettings: strict),
        .target(name: "AMQPClient", dependencies: ["CRabbitMQ", "BridgeCore"], swiftSettings: strict),
        .target(
            name: "KafkaClient",
            dependencies: ["CRdKafka", "BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "RedisSink",
            dependencies: ["RedisClient", "BridgeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The wire protocol's tables over Kafka topics, Redis streams and RabbitMQ queues.
        .target(
            name: "ForeignTables",
            dependencies: ["WireProtocol", "KafkaClient", "RedisClient", "AMQPClient", "BridgeCore"],
            swiftSettings: strict),
        .target(
            name: "Processing",
            dependencies: ["BridgeCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .target(
            name: "Pipeline",
            dependencies: [
                "BridgeCore", "Processing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "BridgeRuntime",
            dependencies: [
                "BridgeCore", "PostgresClient", "PostgresSource", "FileSink", "HTTPSink", "KafkaSink", "KafkaSource",
                "PostgresSink", "RabbitMQSink", "RabbitMQSource", "RedisSource",
                "RedisSink", "KafkaClient", "RedisClient", "AMQPClient", "ForeignTables", "Pipeline", "Processing",
                "WireProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "HTTPAPI",
            dependencies: [
                "BridgeCore", "BridgeRuntime", "Pipeline", "PostgresClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "WireProtocol",
            dependencies: [
                "BridgeCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "pgbridge",
            dependencies: [
                "BridgeCore", "PostgresClient", "PostgresSource", "FileSink", "HTTPSink", "KafkaSink", "Pipeline",
                "BridgeRuntime", "HTTPAPI", "WireProtocol", "PostgresSink", "CMalloc",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // What several test targets share (deterministic generators and the like).
        .target(
            name: "TestSupport", dependencies: ["BridgeCore", "WireProtocol"], path: "Tests/TestSupport",
            swiftSettings: strict),
        .testTarget(
            name: "BridgeCoreTests",
            dependencies: [
                "BridgeCore", "BridgeRuntime", "FileSink", "HTTPSink", "KafkaSource", "RabbitMQSource", "RedisSource",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "PostgresSourceTests",
            dependencies: ["PostgresClient", "PostgresSource", "BridgeCore", "TestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PipelineTests",
            dependencies: [
                "Pipeline", "Processing", "FileSink", "BridgeCore", "BridgeRuntime", "TestSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Golden")], swiftSettings: strict),
        .testTarget(
            name: "HTTPAPITests",
            dependencies: [
                "HTTPAPI", "BridgeCore", "BridgeRuntime", "Pipeline", "PostgresClient", "WireProtocol", "TestSupport",
                .product(name: "OpenAPIKit", package: "OpenAPIKit"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WireProtocolTests",
            dependencies: ["WireProtocol", "TestSupport", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict),
        .testTarget(
            name: "PostgresSinkTests", dependencies: ["PostgresSink", "PostgresClient", "BridgeCore", "TestSupport"],
            swiftSettings: strict),
        .testTarget(name: "BridgeRuntimeTests", dependencies: ["BridgeRuntime", "BridgeCore"], swiftSettings: strict),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "PostgresClient", "PostgresSource", "BridgeCore", "Pipeline", "Processing", "FileSink", "HTTPSink",
                "KafkaSink", "RabbitMQSink", "RedisSink", "KafkaClient", "RedisClient", "AMQPClient", "ForeignTables",
                "CLibPQ", "WireProtocol", "BridgeRuntime", "TestSupport", "PostgresSink",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
