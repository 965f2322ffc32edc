import Foundation
import Testing

/// docs/troubleshooting.md lists messages as pgbridge prints them: each must be in the sources,
/// and asserted by a test that produces it.
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

    /// Every test source but this file, joined.
    static func tests() throws -> String {
        var text = ""
        let enumerator = FileManager.default.enumerator(atPath: root.appendingPathComponent("Tests").path)
        while let path = enumerator?.nextObject() as? String {
            guard path.hasSuffix(".swift"), !path.hasSuffix("TroubleshootingDocTests.swift") else { continue }
            text += try String(contentsOf: root.appendingPathComponent("Tests/\(path)"), encoding: .utf8)
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

    /// The text between the `…` placeholders of a message, as a Swift string literal has it.
    static func fragments(_ message: String) -> [String] {
        message.components(separatedBy: "…").map {
            $0.trimmingCharacters(in: CharacterSet(charactersIn: " ")).replacingOccurrences(of: "\"", with: "\\\"")
        }.filter { $0.count >= 4 }
    }

    /// Each message is produced by a test that asserts it: its fragments are in a test's
    /// expectation (with the placeholders filled in by that test).
    @Test func everyMessageIsProducedByATest() throws {
        let tests = try Self.tests()
        for message in try Self.messages() {
            for fragment in Self.fragments(message) where !tests.contains(fragment) {
                Issue.record("no test asserts \"\(fragment)\" (of \"\(message)\")")
            }
        }
    }

    @Test func everyMessageIsOneTheCodePrints() throws {
        let sources = try Self.sources()
        let messages = try Self.messages()
        #expect(messages.count >= 40, "\(messages.count) messages")
        for message in messages {
            // The text between the `…` placeholders is in the source as written.
            let fragments = Self.fragments(message)
            #expect(!fragments.isEmpty, "\(message)")
            for fragment in fragments {
                #expect(sources.contains(fragment), "not in Sources: \"\(fragment)\" (of \"\(message)\")")
            }
        }
    }
}
