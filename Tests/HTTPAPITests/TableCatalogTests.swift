import BridgeCore
import Foundation
import PostgresSource
import Testing

@testable import HTTPAPI

/// The REST proxy's table cache against a real PostgreSQL: requests for ever new table names
/// (found or not) do not grow it without bound, and what it keeps still answers.
@Suite(
    "REST table catalog cache",
    .enabled(if: ProcessInfo.processInfo.environment["PGBRIDGE_TEST_PG_URL"] != nil))
struct TableCatalogTests {
    @Test func manyTableNamesKeepTheCacheBounded() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["PGBRIDGE_TEST_PG_URL"])
        let pool = SQLPool(postgres: PostgresConfig(url: url), size: 1)
        let catalog = TableCatalog(pool: pool, maxEntries: 50)
        for index in 0..<300 {
            #expect(try await catalog.table(schema: "public", name: "no_such_table_\(index)") == nil)
            #expect(await catalog.cachedCount <= 50)
        }
        #expect(await catalog.cachedCount == 50)
    }
}
