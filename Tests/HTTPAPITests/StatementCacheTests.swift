import Testing

@testable import PostgresClient

@Suite("Prepared statement cache")
struct StatementCacheTests {
    @Test func theLeastRecentlyUsedTextIsEvictedAndNamesAreNeverReused() {
        var cache = StatementCache(capacity: 2)
        #expect(cache.name(for: "a") == nil)
        let a = cache.reserve("a")
        #expect(a.evicted == nil)
        cache.insert("a", name: a.name)
        let b = cache.reserve("b")
        cache.insert("b", name: b.name)
        #expect(cache.name(for: "a") == a.name)  // a is now the most recently used
        let c = cache.reserve("c")
        #expect(c.evicted == b.name)
        cache.insert("c", name: c.name)
        #expect(cache.name(for: "b") == nil)
        #expect(cache.count == 2)
        #expect(Set([a.name, b.name, c.name]).count == 3)
        #expect(cache.remove("a") == a.name)
        #expect(cache.remove("a") == nil)
        let again = cache.reserve("a")
        #expect(again.evicted == nil && again.name != a.name)
    }
}
