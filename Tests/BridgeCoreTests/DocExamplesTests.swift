import Foundation
import Testing

@testable import BridgeCore

/// The examples of README.md and docs/*.md. A block preceded by
/// `<!-- doc-test: illustrative: <reason> -->` is only counted; every other YAML block must be a
/// configuration `pgbridge check --offline` accepts (with each `${VAR}` set), and every JSON
/// block must parse. SQL blocks of some pages run in `DocSQLExamplesTests`; the other shell and
/// SQL blocks are counted per page until they are executed.
@Suite("Documentation examples")
struct DocExamplesTests {
    struct Block {
        var page: String
        var line: Int
        var language: String
        var text: String
        /// The reason given by an `illustrative` marker, if any.
        var illustrative: String?
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func pages() throws -> [String] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { "docs/\($0)" }
        return ["README.md"] + docs
    }

    /// Fenced blocks of a page, in order, with the marker on the line before the fence.
    static func blocks(of page: String) throws -> [Block] {
        let text = try String(contentsOf: root.appendingPathComponent(page), encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        var blocks: [Block] = []
        var index = 0
        while index < lines.count {
            let line = lines[index]
            guard line.hasPrefix("```") else {
                index += 1
                continue
            }
            let language = String(line.dropFirst(3)).trimmingCharacters(in: .whitespaces)
            var body: [String] = []
            var end = index + 1
            while end < lines.count, !lines[end].hasPrefix("```") {
                body.append(lines[end])
                end += 1
            }
            let previous = index > 0 ? lines[index - 1].trimmingCharacters(in: .whitespaces) : ""
            var reason: String?
            if previous.hasPrefix("<!-- doc-test: illustrative:"), previous.hasSuffix("-->") {
                reason = String(previous.dropFirst("<!-- doc-test: illustrative:".count).dropLast(3))
                    .trimmingCharacters(in: .whitespaces)
            }
            blocks.append(
                Block(
                    page: page, line: index + 1, language: language, text: body.joined(separator: "\n"),
                    illustrative: reason))
            index = end + 1
        }
        return blocks
    }

    /// Every `${NAME}` of a text, set to a plausible value.
    static func environment(for text: String) -> [String: String] {
        var environment: [String: String] = [:]
        for match in text.matches(of: /\$\{([A-Za-z_][A-Za-z0-9_]*)/) {
            environment[String(match.1)] = "doc-test-value-0123456789abcdef0123456789abcdef"
        }
        return environment
    }

    @Test func yamlExamplesAreValidConfigurations() throws {
        var checked = 0
        for page in try Self.pages() {
            for block in try Self.blocks(of: page) where block.language == "yaml" && block.illustrative == nil {
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
                    _ = try BridgeConfig.parse(yaml: text, environment: Self.environment(for: text))
                    checked += 1
                } catch {
                    Issue.record("\(page):\(block.line): the example is not a valid configuration: \(error)")
                }
            }
        }
        #expect(checked >= 8, "\(checked) YAML examples checked")
    }

    @Test func jsonExamplesParse() throws {
        for page in try Self.pages() {
            for block in try Self.blocks(of: page) where block.language == "json" && block.illustrative == nil {
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

    /// Every marker gives a reason; the counts per page are printed for the record.
    @Test func illustrativeBlocksSayWhy() throws {
        var summary: [String] = []
        for page in try Self.pages() {
            let blocks = try Self.blocks(of: page)
            guard !blocks.isEmpty else { continue }
            for block in blocks where block.illustrative?.isEmpty == true {
                Issue.record("\(page):\(block.line): an illustrative block must say why")
            }
            let sqlRuns = DocSQLExamplesTests.setups[page] != nil  // run by DocSQLExamplesTests
            let checked = blocks.filter {
                $0.illustrative == nil && (["yaml", "json"].contains($0.language) || (sqlRuns && $0.language == "sql"))
            }.count
            let illustrative = blocks.filter { $0.illustrative != nil }.count
            summary.append(
                "\(page): \(blocks.count) blocks, \(checked) checked, \(illustrative) illustrative, "
                    + "\(blocks.count - checked - illustrative) not run yet")
        }
        print("doc examples:\n" + summary.joined(separator: "\n"))
    }
}
