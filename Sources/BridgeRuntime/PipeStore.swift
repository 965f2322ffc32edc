import BridgeCore
import PostgresClient
import PostgresSource

/// `pgbridge.pipes`: pipes created through the HTTP API and the state the API set for any pipe.
public struct PipeStore: Sendable {
    public struct Record: Sendable, Equatable {
        public var name: String
        /// The pipe as posted (JSON); nil for a pipe of the configuration file.
        public var definition: String?
        public var running: Bool

        public init(name: String, definition: String?, running: Bool) {
            self.name = name
            self.definition = definition
            self.running = running
        }
    }

    public enum StoreError: Error, CustomStringConvertible {
        case missingTable

        public var description: String {
            "table pgbridge.pipes does not exist: run `pgbridge setup` once to create pgbridge's SQL objects"
        }
    }

    /// Each call opens a connection of its own on `Blocking` (never on the cooperative pool).
    let postgres: PostgresConfig

    public init(postgres: PostgresConfig) { self.postgres = postgres }

    /// Every stored pipe; an empty list when the table does not exist yet.
    public func load() async throws -> [Record] {
        try await Blocking.run { [postgres] in
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            guard try PgbridgeSchema.pipesTableExists(connection) else { return [] }
            let result = try connection.execute(
                "SELECT name, definition::text, state FROM pgbridge.pipes ORDER BY name")
            return (0..<result.rowCount).map { row in
                Record(
                    name: result.string(row, 0) ?? "", definition: result.string(row, 1),
                    running: result.string(row, 2) == "RUNNING")
            }
        }
    }

    /// Inserts or replaces a record.
    public func save(_ record: Record) async throws {
        try await Blocking.run { [postgres] in
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            guard try PgbridgeSchema.pipesTableExists(connection) else { throw StoreError.missingTable }
            try connection.execute(
                """
                INSERT INTO pgbridge.pipes (name, definition, state) VALUES ($1, $2::jsonb, $3)
                ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition, state = EXCLUDED.state,
                    updated_at = now()
                """, [record.name, record.definition, record.running ? "RUNNING" : "STOPPED"])
        }
    }

    public func delete(name: String) async throws {
        try await Blocking.run { [postgres] in
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            guard try PgbridgeSchema.pipesTableExists(connection) else { return }
            try connection.execute("DELETE FROM pgbridge.pipes WHERE name = $1", [name])
        }
    }
}
