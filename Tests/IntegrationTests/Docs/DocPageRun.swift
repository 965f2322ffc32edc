import Foundation
import Testing

/// Runs one page's shell and SQL blocks in order, as a user following the page would, against
/// the services `scripts/test` started. The page's test supplies the small setup a reader is
/// told about in prose (a table that "exists", a running pgbridge) and `rewrites` that point
/// the examples at the test's services and keep cluster-wide names unique.
final class DocPageRun: @unchecked Sendable {
    // @unchecked Sendable: one test drives a run from one task at a time.
    let page: String
    let directory: String
    /// Regular expression → literal replacement, applied in order to every block before it runs.
    private(set) var rewrites: [(pattern: String, replacement: String)] = []
    /// Exported to every shell block (the values a reader has in their environment).
    var exports: [String: String] = [:]
    /// Variable assignments of the shell blocks run so far: later blocks use them, as they would
    /// in the reader's shell.
    private var assignments: [String] = []

    init(page: String, label: String) throws {
        self.page = page
        directory = try TestEnvironment.scratchDirectory("doc-\(label)")
    }

    func rewrite(_ pattern: String, _ replacement: String) {
        rewrites.append((pattern, replacement))
    }

    func apply(_ text: String) throws -> String {
        var text = text
        for (pattern, replacement) in rewrites {
            text = text.replacing(try Regex(pattern).wordBoundaryKind(.simple), with: replacement)
        }
        return text
    }

    /// The page's blocks that `DocPages.executed` says the suite runs.
    var blocks: [DocBlock] {
        get throws {
            let languages = DocPages.executed[page] ?? []
            return try DocPages.blocks(of: page).filter { $0.isRun && languages.contains($0.language) }
        }
    }

    /// The first YAML block containing `marker`, rewritten.
    func yaml(containing marker: String) throws -> String {
        let block = try #require(
            try DocPages.blocks(of: page).first { $0.language == "yaml" && $0.text.contains(marker) },
            "\(page) has no YAML block containing \(marker)")
        return try apply(block.text)
    }

    /// Calls `body` with each block to run and its rewritten text, in page order; a failure names
    /// the block.
    func forEachBlock(_ body: (DocBlock, String) async throws -> Void) async throws {
        let blocks = try self.blocks
        #expect(!blocks.isEmpty, "\(page) has no block to run")
        for block in blocks {
            do {
                try await body(block, try apply(block.text))
            } catch {
                throw TestFailure("\(block.location): the example fails: \(error)")
            }
        }
    }

    /// Runs a shell block with bash (`set -euo pipefail`). `curl` fails on an HTTP error status
    /// (`--fail-with-body`); `curl -N` (a stream) is ended once a change event arrived, or after
    /// `streamSeconds`; the caller checks what it printed. Returns the block's output.
    @discardableResult
    func shell(_ text: String, streamSeconds: Int = 60) async throws -> String {
        let exported = exports.sorted { $0.key < $1.key }.map { "export \($0.key)=\(Self.quoted($0.value))" }
        let script = """
            set -euo pipefail
            cd \(Self.quoted(directory))
            \(exported.joined(separator: "\n"))
            curl() {
              local arg
              for arg in "$@"; do
                if [ "$arg" = -N ]; then
                  local out
                  out=$(mktemp)
                  command curl -S --fail-with-body --max-time \(streamSeconds) "$@" >"$out" 2>&1 &
                  local pid=$!
                  while kill -0 "$pid" 2>/dev/null && ! grep -q '^event: change' "$out"; do
                    sleep 0.1
                  done
                  kill "$pid" 2>/dev/null || true
                  wait "$pid" 2>/dev/null || true
                  cat "$out"
                  echo
                  return 0
                fi
              done
              command curl -S --fail-with-body --max-time 30 "$@"
              echo
            }
            \(assignments.joined(separator: "\n"))
            \(text)
            """
        assignments += text.split(separator: "\n").map(String.init).filter {
            $0.firstMatch(of: /^[A-Za-z_][A-Za-z0-9_]*=/) != nil
        }
        let path = (directory as NSString).appendingPathComponent("block-\(UUID().uuidString.prefix(6)).sh")
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await TestEnvironment.shellAsync("bash \(Self.quoted(path))")
        guard result.status == 0 else {
            throw TestFailure("bash exited with status \(result.status): \(result.output.suffix(3000))")
        }
        return result.output
    }

    /// The `pgbridge …` command lines of a shell block (comments dropped), as arguments; a
    /// relative configuration path is taken in the run's directory.
    func pgbridgeCommands(_ text: String) throws -> [[String]] {
        try text.split(separator: "\n").compactMap { line -> [String]? in
            let command = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                .trimmingCharacters(in: .whitespaces)
            guard !command.isEmpty else { return nil }
            var words = command.split(separator: " ").map(String.init)
            guard words.first == "pgbridge" else { throw TestFailure("not a pgbridge command: \(line)") }
            words.removeFirst()
            return words.map { $0.hasSuffix(".yaml") && !$0.hasPrefix("/") ? "\(directory)/\($0)" : $0 }
        }
    }

    /// Runs the `pgbridge` commands of a block. Each must exit 0; `run` is started, given to
    /// `whileRunning` once it logs `ready`, then stopped with SIGTERM (as the page says) and must exit
    /// 0. Returns each command's standard output and error.
    @discardableResult
    func pgbridge(
        _ text: String, ready: String = "streaming changes",
        whileRunning: (BridgeProcess) async throws -> Void = { _ in }
    ) async throws
        -> [String: String]
    {
        var outputs: [String: String] = [:]
        for arguments in try pgbridgeCommands(text) {
            let bridge = try BridgeProcess(
                arguments: arguments, directory: directory, label: arguments[0], keepStdout: true)
            if arguments.first == "run" {
                try await bridge.waitForLog(ready)
                try await whileRunning(bridge)
                bridge.kill(SIGTERM)
            }
            let status = try await bridge.waitForExit()
            guard status == 0 else {
                throw TestFailure(
                    "pgbridge \(arguments.joined(separator: " ")) exited with \(status): \(bridge.stdout.suffix(2000)) \(bridge.stderr.suffix(3000))"
                )
            }
            outputs[arguments[0]] = bridge.stdout + bridge.stderr
        }
        return outputs
    }

    static func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
