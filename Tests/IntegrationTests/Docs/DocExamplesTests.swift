import BridgeRuntime
import Foundation
import Testing

@testable import BridgeCore

/// The examples of README.md and docs/*.md. A block preceded by
/// `<!-- doc-test: illustrative: <reason> -->` is only counted; every other YAML block must be a
/// configuration `pgbridge check --offline` accepts (with each `${VAR}` set), and every JSON
/// block must parse. Shell and SQL blocks run in `DocSQLExamplesTests` and `DocPageTests`
/// (`DocPages.executed` says which); a block that none of them runs fails
/// `everyBlockIsRunOrSaysWhyNot`.
@Suite("Documentation examples")
struct DocExamplesTests {
    @Test func yamlExamplesAreValidConfigurations() throws {
        var checked = 0
        for page in try DocPages.all() {
            for block in try DocPages.blocks(of: page) where block.language == "yaml" && block.illustrative == nil {
                // Pages leave postgres out of examples about other sections: supply one.
                var text = block.text
                let topKeys = text.split(separator: "\n").filter { !$0.hasPrefix(" ") && !$0.hasPrefix("#") }
                if !topKeys.contains(where: { $0.hasPrefix("postgres:") }) {
                    text = "postgres: {url: \"postgresql://doc@127.0.0.1:5432/doc\"}\n" + text
                }
                // …and a pipe to examples of the ha section alone.
                if !topKeys.contains(where: { $0.hasPrefix("pipes:") || $0.hasPrefix("api:") || $0.hasPrefix("wire:") })
                {
                    text += "\npipes: [{name: doc, source: {tables: [public.t]}, sinks: [{kind: file, path: \"-\"}]}]"
                }
                do {
                    _ = try BridgeConfig.parse(
                        yaml: text, registry: .standard, environment: DocPages.environment(for: text))
                    checked += 1
                } catch {
                    Issue.record("\(page):\(block.line): the example is not a valid configuration: \(error)")
                }
            }
        }
        #expect(checked >= 8, "\(checked) YAML examples checked")
    }

    @Test func jsonExamplesParse() throws {
        for page in try DocPages.all() {
            for block in try DocPages.blocks(of: page) where block.language == "json" && block.illustrative == nil {
                // One document, or JSON lines.
                let documents =
                    (try? JSONSerialization.jsonObject(with: Data(block.text.utf8))) != nil
                    ? [block.text] : block.text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
                for document in documents where (try? JSONSerialization.jsonObject(with: Data(document.utf8))) == nil {
                    Issue.record("\(page):\(block.line): the JSON example does not parse: \(document.prefix(80))")
                }
            }
        }
    }

    /// Every block is checked, run or marked illustrative with a reason: a new example nobody
    /// runs fails here. The counts per page are printed for the record.
    @Test func everyBlockIsRunOrSaysWhyNot() throws {
        // Every page said to be executed is run by one of the runners, and no page by both.
        let runners = Set(KafkaClusterSuites.DocPageTests.pages)
        let sqlOnly = Set(DocSQLExamplesTests.setups.keys)
        #expect(Set(DocPages.executed.keys) == runners.union(sqlOnly), "DocPages.executed names pages nothing runs")
        #expect(runners.isDisjoint(with: sqlOnly))
        var summary: [String] = []
        for page in try DocPages.all() {
            let blocks = try DocPages.blocks(of: page)
            guard !blocks.isEmpty else { continue }
            var checked = 0
            var illustrative = 0
            for block in blocks {
                if let reason = block.illustrative {
                    if reason.isEmpty { Issue.record("\(block.location): an illustrative block must say why") }
                    illustrative += 1
                } else if ["yaml", "json"].contains(block.language)
                    || DocPages.executed[page]?.contains(block.language) == true
                {
                    checked += 1
                } else {
                    let message =
                        "\(block.location): no test runs this \(block.language) block: run it (DocPages.executed) "
                        + "or mark it <!-- doc-test: illustrative: reason -->"
                    Issue.record(Comment(rawValue: message))
                }
            }
            summary.append("\(page): \(blocks.count) blocks, \(checked) run or checked, \(illustrative) illustrative")
        }
        print("doc examples:\n" + summary.joined(separator: "\n"))
    }
}
