import BridgeCore
import Foundation
import Testing

/// Heavy tests that run the real binary; serialised so they do not compete for the 2 cores.
@Suite("Crash recovery and bounded memory", .serialized, .enabled(if: TestEnvironment.hasBinary))
struct RecoveryTests {
    /// kill -9 pgbridge at least 3 times while 50,000 rows are written in small transactions.
    @Test func survivesKillNineWithoutLosingRows() async throws {
        let db = try TestDatabase(prefix: "crash")
        defer { db.drop() }
        try db.sql(
            """
            CREATE TABLE rows (id int PRIMARY KEY, k int NOT NULL, v int NOT NULL);
            CREATE TABLE counters (k int PRIMARY KEY, v int NOT NULL);
            INSERT INTO counters SELECT g, 0 FROM generate_series(0, 9) g;
            """)
        let directory = try TestEnvironment.scratchDirectory("crash")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.rows", "public.counters"], slot: slot, output: output)
        func launch() throws -> BridgeProcess {
            try BridgeProcess(arguments: ["run", "--config", config, "--log-level", "info"], directory: directory)
        }
        var bridge = try launch()
        try await waitForSlot(db, slot)

        let totalRows = 50_000
        let perTransaction = 10
        let inserter = Inserter(url: db.url)
        inserter.start(
            transactions: totalRows / perTransaction, rowsPerTransaction: perTransaction, pause: .milliseconds(2),
            table: "rows"
        ) { index, firstID in
            "INSERT INTO rows SELECT g, g % 10, g FROM generate_series(\(firstID), \(firstID + perTransaction - 1)) g; "
                + "UPDATE counters SET v = v + 1 WHERE k = \(index % 10)"
        }

        // Kill -9 at fixed points of the workload (not on a timer, which a fast or a loaded
        // machine stretches); check the slot never passes what was written.
        var kills = 0
        var violations: [String] = []
        let sampler = ConfirmedSampler()
        let transactions = totalRows / perTransaction
        for percent in [20, 40, 60, 80] {
            try await waitFor("\(percent) % of the workload", timeout: .seconds(120)) {
                inserter.commits.count >= transactions * percent / 100
            }
            if let problem = try sampler.check(db: db, slot: slot, output: output, commits: inserter.commits) {
                violations.append(problem)
            }
            guard !inserter.isDone else { break }
            bridge.kill(SIGKILL)
            _ = try await bridge.waitForExit()
            kills += 1
            try await Task.sleep(for: .milliseconds(Int64.random(in: 50...400)))
            bridge = try launch()
        }
        try await inserter.waitUntilDone()
        #expect(kills >= 3, "pgbridge was killed only \(kills) times while rows were written")

        let events = try await EventFile.waitFor(output, timeout: .seconds(90)) { events in
            Set(events.compactMap { $0.table == "rows" ? $0.after?["id"] as? Int : nil }).count >= totalRows
        }
        if let problem = try sampler.check(db: db, slot: slot, output: output, commits: inserter.commits) {
            violations.append(problem)
        }
        // A SIGTERM before the signal handlers exist ends the process with 143: the last one
        // launched may have had nothing left to deliver, so wait until it runs.
        try await waitFor("the last pgbridge streaming") { bridge.stderr.contains("streaming changes") }
        bridge.kill(SIGTERM)
        let status = try await bridge.waitForExit()
        #expect(status == 0, "SIGTERM exit status \(status): \(bridge.stderr.suffix(1500))")
        #expect(violations.isEmpty, "\(violations)")

        let ids = events.compactMap { $0.table == "rows" ? $0.after?["id"] as? Int : nil }
        let missing = Set(1...totalRows).subtracting(ids)
        #expect(missing.isEmpty, "\(missing.count) rows missing, e.g. \(missing.sorted().prefix(10))")

        // Per-key order: the first time each event id appears, the counter values of one key increase.
        let (orderViolations, lastValue) = EventFile.firstDeliveryOrder(
            events, key: "k", value: "v", where: { $0.table == "counters" })
        #expect(orderViolations == 0)
        let finalCounters = try db.sql("SELECT k, v FROM counters ORDER BY k")
        for row in finalCounters {
            #expect(lastValue[Int(row[0]!)!] == Int(row[1]!), "counter \(row[0]!) ended at \(row[1]!)")
        }
        let duplicates = ids.count - Set(ids).count
        print("crash test: \(kills) kills, \(ids.count) row events for \(totalRows) rows (\(duplicates) re-delivered)")
    }

    /// One 200 MB transaction (streamed by the server, spilled to disk by pgbridge).
    @Test func largeTransactionWithBoundedMemory() async throws {
        let db = try TestDatabase(prefix: "large")
        defer { db.drop() }
        try db.sql("CREATE TABLE big (id int PRIMARY KEY, payload text)")
        let directory = try TestEnvironment.scratchDirectory("large")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.big"], slot: slot, output: output)
        let rows = 200_000
        let bridge = try BridgeProcess(
            arguments: ["run", "--config", config, "--stop-after-events", String(rows)], directory: directory)
        try await waitForSlot(db, slot)
        // 200,000 rows x 1 KiB of text = 200 MB in one transaction.
        try db.sql("INSERT INTO big SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, \(rows)) g")
        var peak = 0
        let deadline = ContinuousClock.now + .seconds(300)
        while bridge.isRunning && ContinuousClock.now < deadline {
            peak = max(peak, bridge.peakRSS() ?? 0)
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = try await bridge.waitForExit()
        #expect(status == 0, "\(bridge.stderr.suffix(1500))")
        let attributes = try FileManager.default.attributesOfItem(atPath: output)
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        #expect(size > 200_000_000)
        let lines = try EventFile.countLines(output)
        #expect(lines == rows)
        print("large transaction: \(size / 1_000_000) MB of events, peak RSS \(peak / 1_048_576) MiB")
        #expect(peak > 0 && peak < 150 * 1_048_576, "peak RSS \(peak / 1_048_576) MiB")
    }
}

/// Checks that every transaction known to have committed below the slot's confirmed position
/// is in the output file (the slot must never be confirmed past what was written).
struct ConfirmedSampler {
    func check(db: TestDatabase, slot: String, output: String, commits: [Inserter.Commit]) throws -> String? {
        guard let confirmed = try db.slotConfirmedLSN(slot) else { return nil }
        // Read the file after the slot position: what was confirmed must already be there.
        let written = Set(EventFile.read(output).compactMap { $0.table == "rows" ? $0.after?["id"] as? Int : nil })
        for commit in commits where commit.walAfterCommit <= confirmed {
            if !written.contains(commit.lastID) {
                return
                    "slot confirmed \(confirmed) but row \(commit.lastID) (committed before \(commit.walAfterCommit)) is not in the file"
            }
        }
        return nil
    }
}
