import Foundation

/// A fenced block of README.md or docs/*.md.
struct DocBlock {
    var page: String
    var line: Int
    var language: String
    var text: String
    /// The reason given by an `<!-- doc-test: illustrative: <reason> -->` marker on the line
    /// before the fence, if any.
    var illustrative: String?

    var isRun: Bool { illustrative == nil }
    var location: String { "\(page):\(line)" }
}

/// The pages and their fenced blocks.
enum DocPages {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func all() throws -> [String] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { "docs/\($0)" }
        return ["README.md"] + docs
    }

    /// Fenced blocks of a page, in order, with the marker on the line before the fence.
    static func blocks(of page: String) throws -> [DocBlock] {
        let text = try String(contentsOf: root.appendingPathComponent(page), encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        var blocks: [DocBlock] = []
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
                DocBlock(
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

    /// Which blocks of which pages the test suite executes, beyond the YAML and JSON blocks that
    /// `DocExamplesTests` checks everywhere: `DocSQLExamplesTests` (SQL in a rolled-back
    /// transaction) and the page runs of `DocPageTests` (every non-illustrative shell and SQL
    /// block, in order, against running services).
    static let executed: [String: Set<String>] = [
        "README.md": ["sh"],
        "docs/getting-started.md": ["sql", "sh"],
        "docs/trigger-capture.md": ["sql"],
        "docs/http-api.md": ["sql", "sh"],
        "docs/foreign-tables.md": ["sql"],
        "docs/sources.md": ["sql", "sh"],
    ]
}
