import Testing

/// The SQL examples of pages whose SQL needs only PostgreSQL: each block runs, after the
/// page's setup, in a transaction that is rolled back (so roles and objects it creates leave no
/// trace). Blocks marked illustrative are skipped.
@Suite("Documentation SQL examples", .enabled(if: TestEnvironment.hasPostgres))
struct DocSQLExamplesTests {
    /// What a page's SQL expects to exist (the page says so in its text). Pages whose examples
    /// `DocPageTests` runs in order are not repeated here.
    static let setups: [String: String] = [
        "docs/trigger-capture.md": """
        CREATE TABLE public.orders (id int PRIMARY KEY);
        CREATE TABLE public.payments (id int PRIMARY KEY);
        CREATE TABLE public.users (id int PRIMARY KEY, email text, name text);
        """
    ]

    @Test(arguments: setups.keys.sorted())
    func sqlBlocksRun(page: String) throws {
        let db = try TestDatabase(prefix: "doc")
        defer { db.drop() }
        let blocks = try DocPages.blocks(of: page).filter { $0.language == "sql" && $0.illustrative == nil }
        #expect(!blocks.isEmpty, "\(page) has no SQL block to run")
        for block in blocks {
            do {
                try db.sql("BEGIN; \(Self.setups[page] ?? "")\n\(block.text)\n; ROLLBACK")
            } catch {
                _ = try? db.sql("ROLLBACK")
                Issue.record("\(page):\(block.line): the SQL example fails: \(error)")
            }
        }
    }
}
