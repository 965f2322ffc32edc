import Foundation
import Testing

@testable import PostgresSource

@Suite("SQL extension script")
struct ExtensionSQLTests {
    /// `pgbridge setup` embeds the script: it must stay identical to sql/pgbridge--0.1.sql and the
    /// upgrade scripts.
    @Test func embeddedScriptMatchesTheExtensionFile() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let file = try String(contentsOf: root.appendingPathComponent("sql/pgbridge--0.1.sql"), encoding: .utf8)
        #expect(file == ExtensionSQL.install_0_1)
        let upgrade = try String(
            contentsOf: root.appendingPathComponent("sql/pgbridge--0.1--0.2.sql"), encoding: .utf8)
        #expect(upgrade == ExtensionSQL.upgrade_0_1_to_0_2)
        let upgrade3 = try String(
            contentsOf: root.appendingPathComponent("sql/pgbridge--0.2--0.3.sql"), encoding: .utf8)
        #expect(upgrade3 == ExtensionSQL.upgrade_0_2_to_0_3)
        let upgrade4 = try String(
            contentsOf: root.appendingPathComponent("sql/pgbridge--0.3--0.4.sql"), encoding: .utf8)
        #expect(upgrade4 == ExtensionSQL.upgrade_0_3_to_0_4)
        #expect(DatabaseSetup.upgrades.last?.to == ExtensionSQL.version)
        let control = try String(contentsOf: root.appendingPathComponent("sql/pgbridge.control"), encoding: .utf8)
        #expect(control.contains("default_version = '\(ExtensionSQL.version)'"))
        #expect(!DatabaseSetup.script(file).contains("\\echo"))
    }
}
