import BridgeCore
import Testing

@Suite("RFC 3339 commit times")
struct RFC3339ParsingTests {
    @Test func parsesCommitTimes() {
        func seconds(_ text: String) -> Double? {
            Array(text.utf8).withUnsafeBufferPointer { PostgresTime.unixSeconds(rfc3339: $0) }
        }
        #expect(seconds("1970-01-01T00:00:00Z") == 0)
        #expect(seconds("2026-11-20T10:00:00.5Z") == 1_795_168_800.5)
        #expect(seconds("2000-02-29T23:59:59Z") == 951_868_799)
        #expect(seconds("not a time at all!!") == nil)
        #expect(seconds("2026-13-20T10:00:00Z") == nil)
    }
}
