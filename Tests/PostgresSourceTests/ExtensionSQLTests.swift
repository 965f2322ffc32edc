import Foundation
import Testing

@testable import PostgresSource

@Suite("SQL extension script")
struct ExtensionSQLTests {
    /// `pgbridge setup` embeds the script: it must stay identical to sql/pgbridge--0.1.sql.
    @Test func embeddedScriptMatchesTheExtensionFile() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let file = try String(contentsOf: root.appendingPathComponent("sql/pgbridge--0.1.sql"), encoding: .utf8)
        #expect(file == ExtensionSQL.install_0_1)
        let control = try String(contentsOf: root.appendingPathComponent("sql/pgbridge.control"), encoding: .utf8)
        #expect(control.contains("default_version = '\(ExtensionSQL.version)'"))
        #expect(!DatabaseSetup.script(file).contains("\\echo"))
    }
}
