import BridgeCore
import Foundation
import Logging
import Testing

@testable import HTTPAPI
@testable import PostgresClient

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
        // Full, or less when entries expired meanwhile (a slow, loaded run): never more.
        #expect(await catalog.cachedCount > 0)
    }
}

/// X-Commit-LSN's lookup: off after pg_walinspect was not usable, tried again after the
/// interval (a later `pgbridge setup` or GRANT works without a restart), warned once per outage.
@Suite("X-Commit-LSN lookup")
struct CommitLSNLookupTests {
    @Test func anUnusableLookupIsTriedAgainLater() {
        let lookup = CommitLSNLookup(logger: Logger(label: "test"), recheckInterval: .seconds(60))
        let start = ContinuousClock.now
        #expect(!lookup.isOff(at: start))
        #expect(lookup.markUnusable(at: start), "the first failure warns")
        #expect(lookup.isOff(at: start + .seconds(30)))
        #expect(!lookup.isOff(at: start + .seconds(61)), "tried again after the interval")
        #expect(!lookup.markUnusable(at: start + .seconds(61)), "still unusable: no second warning")
        #expect(lookup.isOff(at: start + .seconds(90)))
        #expect(lookup.markUsable(), "usable again: said once")
        #expect(!lookup.isOff(at: start + .seconds(90)) && !lookup.markUsable())
    }
}
