import Foundation
import Testing

/// docs/troubleshooting.md lists messages as pgbridge prints them: each must be in the sources.
@Suite("Troubleshooting guide")
struct TroubleshootingDocTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Every Swift and SQL source file, joined.
    static func sources() throws -> String {
        var text = ""
        let enumerator = FileManager.default.enumerator(atPath: root.appendingPathComponent("Sources").path)
        while let path = enumerator?.nextObject() as? String {
            guard path.hasSuffix(".swift") else { continue }
            text += try String(contentsOf: root.appendingPathComponent("Sources/\(path)"), encoding: .utf8)
        }
        return text
    }

    /// The messages: the first cell of each table row, between backticks.
    static func messages() throws -> [String] {
        let doc = try String(contentsOf: root.appendingPathComponent("docs/troubleshooting.md"), encoding: .utf8)
        return doc.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `"), let end = line.dropFirst(3).firstIndex(of: "`") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: 3)..<end])
        }
    }

    @Test func everyMessageIsOneTheCodePrints() throws {
        let sources = try Self.sources()
        let messages = try Self.messages()
        #expect(messages.count >= 40, "\(messages.count) messages")
        for message in messages {
            // The text between the `…` placeholders is in the source as written.
            let fragments = message.components(separatedBy: "…").map {
                $0.trimmingCharacters(in: CharacterSet(charactersIn: " ")).replacingOccurrences(of: "\"", with: "\\\"")
            }.filter { $0.count >= 4 }
            #expect(!fragments.isEmpty, "\(message)")
            for fragment in fragments {
                #expect(sources.contains(fragment), "not in Sources: \"\(fragment)\" (of \"\(message)\")")
            }
        }
    }
}
