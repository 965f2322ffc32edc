import Foundation
import Testing

/// A full disk under the file sink and the spill files: no torn line is left in front of the
/// retry, nothing is lost, and the pipe goes on by itself once there is space again.
@Suite(
    "A full disk",
    .enabled(if: TestEnvironment.hasBinary && TestEnvironment.environment["PGBRIDGE_TEST_SMALL_FS"] != nil)
)
struct DiskFullTests {
    @Test func aFullDiskMakesThePipeWaitAndLosesNothing() async throws {
        let small = try #require(TestEnvironment.environment["PGBRIDGE_TEST_SMALL_FS"])
        let db = try TestDatabase(prefix: "diskfull")
        defer { db.drop() }
        // Small transactions, and a large one that PostgreSQL streams (logical_decoding_work_mem
        // is tiny for this database) so pgbridge spills it to state_dir.
        try db.sql(
            """
            CREATE TABLE t (id int PRIMARY KEY, pad text);
            ALTER DATABASE \(db.name) SET logical_decoding_work_mem = '64kB';
            """)
        let directory = (small as NSString).appendingPathComponent(db.name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let output = "\(directory)/events.jsonl"
        // pgbridge's configuration and log stay on a disk with space.
        let logs = try TestEnvironment.scratchDirectory("diskfull")
        let config = "\(logs)/pgbridge.yaml"
        let slot = "pgbridge_\(db.name)"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        pipes:
          - name: full
            source: {tables: [public.t], slot: \(slot), publication: \(slot), status_interval: 1s}
            sinks: [{kind: file, path: \(output), retry_interval: 100ms, max_retry_interval: 1s}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: logs)
        defer { bridge.kill(SIGKILL) }
        try await waitForSlot(db, slot)

        // Fill the filesystem, leaving a few kilobytes.
        let filler = "\(directory)/filler"
        #expect(FileManager.default.createFile(atPath: filler, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: filler))
        let block = Data(repeating: 0x78, count: 64 * 1024)
        while (try? handle.write(contentsOf: block)) != nil {}
        try handle.truncate(atOffset: try handle.offset() - 3 * 64 * 1024)
        try handle.close()

        // Transactions of 30 kB (not streamed) fill the sink's file; then one of 4.5 MB that
        // PostgreSQL streams and pgbridge must spill while the disk is full.
        for first in stride(from: 1, through: 200, by: 20) {
            try db.sql("INSERT INTO t SELECT g, repeat('x', 1500) FROM generate_series(\(first), \(first + 19)) g")
        }
        try db.sql("INSERT INTO t SELECT g, repeat('y', 1500) FROM generate_series(201, 3200) g")
        do {
            try await waitFor("the file sink to report the full disk", timeout: .seconds(60)) {
                bridge.stderr.contains("the disk of \(output) is full; pgbridge retries until there is space again")
            }
            try await waitFor("the spill file to report the full disk", timeout: .seconds(60)) {
                bridge.stderr.contains("the disk of state_dir is full: cannot write spill file")
            }
        } catch {
            let df = try? await TestEnvironment.shellAsync("df -k \(small); ls -la \(directory) \(directory)/state")
            throw TestFailure(
                "\(error): \(df?.output ?? ""), \(EventFile.read(output).count) events: \(bridge.stderr.suffix(3000))")
        }
        // Nothing torn in the file meanwhile: every line is a complete event.
        let partial = try String(contentsOfFile: output, encoding: .utf8)
        #expect(partial.isEmpty || partial.hasSuffix("\n"))

        try FileManager.default.removeItem(atPath: filler)
        let events = try await EventFile.waitFor(output, timeout: .seconds(120)) { events in
            Set(events.compactMap { $0.after?["id"] as? Int }).count >= 3200
        }
        #expect(Set(events.compactMap { $0.after?["id"] as? Int }) == Set(1...3200), "\(bridge.stderr.suffix(2000))")
        let text = try String(contentsOfFile: output, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(
            text.hasSuffix("\n") && lines.count == events.count,
            "a torn line: \(lines.count) lines, \(events.count) events")
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }
}
