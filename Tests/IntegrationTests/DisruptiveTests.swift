import BridgeCore
import Foundation
import Testing

@testable import PostgresClient
@testable import PostgresSource

/// Tests that restart or reconfigure the second PostgreSQL cluster; serialised.
@Suite("PostgreSQL restarts and server prerequisites", .serialized, .enabled(if: TestEnvironment.hasDisruptivePostgres))
struct DisruptiveTests {
    @Test func postgresRestartMidStreamLosesNothing() async throws {
        let db = try TestDatabase(prefix: "restart", serverURL: TestEnvironment.disruptivePostgresURL)
        defer { db.drop() }
        try db.sql("CREATE TABLE r (id int PRIMARY KEY, note text)")
        let directory = try TestEnvironment.scratchDirectory("restart")
        let output = (directory as NSString).appendingPathComponent("events.jsonl")
        let slot = "pgbridge_\(db.name)"
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.r"], slot: slot, output: output)
        let bridge = try BridgeProcess(
            arguments: ["run", "--config", config, "--log-level", "info"], directory: directory)
        try await waitForSlot(db, slot)

        let inserter = Inserter(url: db.url)
        inserter.start(transactions: 3000, rowsPerTransaction: 1, pause: .milliseconds(2), table: "r") { _, id in
            "INSERT INTO r VALUES (\(id), 'row \(id)')"
        }
        try await Task.sleep(for: .milliseconds(1500))
        try TestEnvironment.control(["restart"])  // clean restart
        try await Task.sleep(for: .milliseconds(1500))
        try TestEnvironment.control(["stop-immediate"])  // crash: the slot position may move back
        try TestEnvironment.control(["start"])
        try await inserter.waitUntilDone(timeout: .seconds(120))
        try db.reconnect()
        let expected = Set(try db.sql("SELECT id FROM r").compactMap { $0[0].flatMap { Int($0) } })
        #expect(expected.count > 1000)
        let events = try await EventFile.waitFor(output, timeout: .seconds(90)) { events in
            Set(events.compactMap { $0.after?["id"] as? Int }).isSuperset(of: expected)
        }
        bridge.kill(SIGTERM)
        let status = try await bridge.waitForExit()
        let delivered = Set(events.compactMap { $0.after?["id"] as? Int })
        let missing = expected.subtracting(delivered)
        #expect(missing.isEmpty, "\(missing.count) committed rows missing, e.g. \(missing.sorted().prefix(10))")
        #expect(status == 0)
        #expect(bridge.stderr.contains("reconnecting"), "expected a reconnect in the log")
        print("restart test: \(expected.count) rows, \(events.count) events, \(inserter.failures) inserter retries")
    }

    @Test func walLevelNotLogicalIsAClearError() async throws {
        let serverURL = try #require(TestEnvironment.disruptivePostgresURL)
        let admin = try PGConnection(url: serverURL, mode: .normal)
        // PostgreSQL refuses to start with wal_level below logical while logical slots exist.
        for _ in 0..<50 {
            try admin.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active")
            try admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active")
            if try admin.execute("SELECT count(*) FROM pg_replication_slots").string(0, 0) == "0" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try admin.execute("ALTER SYSTEM SET wal_level = replica")
        try TestEnvironment.control(["restart"])
        defer {
            if let admin = try? PGConnection(url: serverURL, mode: .normal) {
                _ = try? admin.execute("ALTER SYSTEM RESET wal_level")
            }
            try? TestEnvironment.control(["restart"])
        }
        let directory = try TestEnvironment.scratchDirectory("wallevel")
        let db = try TestDatabase(prefix: "wallevel", serverURL: serverURL)
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.t"], slot: "pgbridge_\(db.name)",
            output: "\(directory)/o.jsonl")
        let run = try await BridgeProcess.run(["run", "--config", config], directory: directory)
        #expect(run.status == 3)
        #expect(
            run.stderr.contains(
                "wal_level is 'replica' but capture needs 'logical': run ALTER SYSTEM SET wal_level = logical"))
        let check = try await BridgeProcess.run(["check", "--config", config], directory: directory)
        #expect(check.status == 3)
        #expect(check.stderr.contains("wal_level is 'replica'"))
    }
}

@Suite("CLI: errors name the object and the fix", .enabled(if: TestEnvironment.hasBinary))
struct CLITests {
    func write(_ yaml: String, in directory: String) throws -> String {
        let path = (directory as NSString).appendingPathComponent("c.yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `check --offline` validates the configuration without connecting to anything.
    @Test func checkOfflineConnectsToNothing() async throws {
        let directory = try TestEnvironment.scratchDirectory("cli-offline")
        let valid = try write(
            """
            postgres: {url: "postgresql://u@127.0.0.1:1/db"}
            pipes:
              - name: p
                source: {tables: [public.t]}
                sinks: [{kind: kafka, brokers: "127.0.0.1:1", topic: t}]
            """, in: directory)
        let ok = try await BridgeProcess.run(["check", "--offline", "--config", valid], directory: directory)
        #expect(ok.status == 0, "\(ok.stderr)")
        let invalid = try write(
            "postgres: {url: \"postgresql://u@h/db\"}\npipes: [{name: p, source: {tabels: [t]}}]", in: directory)
        let bad = try await BridgeProcess.run(["check", "--offline", "--config", invalid], directory: directory)
        #expect(bad.status == 2 && bad.stderr.contains("did you mean 'tables'"), "\(bad.stderr)")
    }

    /// PostgreSQL unreachable at start: a SIGTERM during the connection retries ends the pipe
    /// on the stop itself (nothing was read), with exit code 0, not after the grace period.
    @Test func sigtermWhileWaitingForPostgreSQLStopsAtOnce() async throws {
        let directory = try TestEnvironment.scratchDirectory("cli-unreachable")
        let config = try write(
            """
            postgres: {url: "postgresql://u@127.0.0.1:1/db"}
            state_dir: \(directory)/state
            pipes:
              - name: p
                source: {tables: [public.t]}
                sinks: [{kind: file, path: "\(directory)/events.jsonl"}]
            """, in: directory)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        try await waitFor("the second connection attempt", timeout: .seconds(30)) {
            bridge.stderr.contains("start source failed (attempt 2)")
        }
        bridge.kill(SIGTERM)
        // Not timed here (the test process's scheduling would be measured too): the pipe must end
        // on the stop itself, not through the grace period that cancels a stuck delivery.
        let status = try await bridge.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "\(bridge.stderr.suffix(1500))")
        #expect(!bridge.stderr.contains("did not finish its delivery"), "\(bridge.stderr.suffix(1500))")
        #expect(bridge.stderr.contains("pipe stopped before it started"))
    }

    /// `dead_letter: {kind: table}` before `pgbridge setup`: `check` names the missing table and
    /// the fix, and `run` refuses to start the pipe (exit 3) instead of retrying the first
    /// rejected event forever.
    @Test func aMissingDeadLetterTableIsFoundBeforeTheFirstRejection() async throws {
        let db = try TestDatabase(prefix: "dl_table")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let directory = try TestEnvironment.scratchDirectory("cli-dl-table")
        let config = try write(
            """
            postgres: {url: "\(db.url)"}
            state_dir: \(directory)/state
            pipes:
              - name: p
                source: {tables: [public.t], slot: \(db.name), publication: \(db.name)}
                sinks: [{kind: file, path: "\(directory)/events.jsonl"}]
                dead_letter: {kind: table}
            """, in: directory)
        let expected = "dead_letter: {kind: table} needs the table pgbridge.dead_letters: run `pgbridge setup`"
        let check = try await BridgeProcess.run(["check", "--config", config], directory: directory)
        #expect(check.status == 3 && check.stderr.contains(expected), "\(check.status): \(check.stderr)")
        let run = try await BridgeProcess.run(["run", "--config", config], directory: directory)
        #expect(run.status == 3 && run.stderr.contains(expected), "\(run.status): \(run.stderr.suffix(1500))")
        // After setup both are happy.
        #expect(try await BridgeProcess.run(["setup", "--config", config], directory: directory).status == 0)
        let fixed = try await BridgeProcess.run(["check", "--config", config], directory: directory)
        #expect(fixed.status == 0, "\(fixed.stderr)")
        // A replication role that sees the table but may not insert into it is told the GRANT.
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_repl LOGIN REPLICATION"))
            DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = '\(db.name)') THEN
                CREATE PUBLICATION \(db.name) FOR TABLE t;
              END IF;
            END $$;
            GRANT USAGE ON SCHEMA pgbridge TO pgbridge_test_repl;
            """)
        let limited = try write(
            try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(
                of: "postgresql://postgres@", with: "postgresql://pgbridge_test_repl@"), in: directory)
        let denied = try await BridgeProcess.run(["check", "--config", limited], directory: directory)
        #expect(
            denied.status == 3
                && denied.stderr.contains(
                    "dead_letter: {kind: table}: role pgbridge_test_repl may not insert into pgbridge.dead_letters: GRANT INSERT ON pgbridge.dead_letters TO pgbridge_test_repl"
                ), "\(denied.status): \(denied.stderr)")
    }

    /// `slots` reads only what it uses of the configuration: a `${VAR}` of a sink that is not
    /// set does not stop it (it stops `run`, which needs the sink).
    @Test func slotsNeedOnlyThePostgresSection() async throws {
        let db = try TestDatabase(prefix: "slots_view")
        defer { db.drop() }
        let slot = "view_\(db.name)"
        try db.sql("SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput')")
        let directory = try TestEnvironment.scratchDirectory("cli-slots-view")
        let config = try write(
            """
            postgres: {url: "\(db.url)"}
            state_dir: \(directory)/state
            pipes:
              - name: p
                source: {tables: [public.t], slot: \(slot)}
                sinks: [{kind: redis, url: "redis://:${PGBRIDGE_TEST_UNSET_PASSWORD}@127.0.0.1:1/0"}]
            """, in: directory)
        try FileManager.default.createDirectory(atPath: "\(directory)/state", withIntermediateDirectories: true)
        try "{}".write(toFile: "\(directory)/state/p.checkpoint", atomically: true, encoding: .utf8)
        let run = try await BridgeProcess.run(["run", "--config", config], directory: directory)
        #expect(run.status == 2 && run.stderr.contains("PGBRIDGE_TEST_UNSET_PASSWORD"), "\(run.stderr)")
        let list = try await BridgeProcess.run(["slots", "--config", config], directory: directory)
        #expect(list.status == 0, "\(list.stderr)")
        let drop = try await BridgeProcess.run(["slots", "drop", slot, "--config", config], directory: directory)
        #expect(drop.status == 0, "\(drop.stderr)")
        #expect(
            !FileManager.default.fileExists(atPath: "\(directory)/state/p.checkpoint"), "the pipe forgot its position")
        #expect(try db.value("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '\(slot)'") == "0")
    }

    /// A role that may log in and replicate but not create the publication or publish a table
    /// it does not own: `check` names each missing privilege with the SQL that grants it, and
    /// `run` exits 3 with the same words instead of `permission denied`. Without REPLICATION,
    /// `check` says so too.
    @Test func checkFindsThePrivilegesRunNeeds() async throws {
        let db = try TestDatabase(prefix: "privileges")
        defer { db.drop() }
        try db.sql(
            """
            \(TestDatabase.createRoles("pgbridge_test_repl LOGIN REPLICATION", "pgbridge_test_plain LOGIN"))
            CREATE TABLE t (id int PRIMARY KEY);
            """)
        let directory = try TestEnvironment.scratchDirectory("cli-privileges")
        func config(user: String, snapshot: Bool = false) throws -> String {
            let url = db.url.replacingOccurrences(of: "postgresql://postgres@", with: "postgresql://\(user)@")
            return try write(
                """
                postgres: {url: "\(url)"}
                state_dir: \(directory)/state
                pipes:
                  - name: p
                    source: {tables: [public.t], slot: \(db.name), publication: pub_\(db.name)\(snapshot ? ", snapshot: initial" : "")}
                    sinks: [{kind: file, path: "\(directory)/events.jsonl"}]
                """, in: directory)
        }
        let limited = try config(user: "pgbridge_test_repl", snapshot: true)
        let check = try await BridgeProcess.run(["check", "--config", limited], directory: directory)
        #expect(check.status == 3, "\(check.stderr)")
        for expected in [
            "role pgbridge_test_repl may not create publication pub_\(db.name) in database \(db.name): GRANT CREATE ON DATABASE",
            "role pgbridge_test_repl must own table public.t to publish it in pub_\(db.name)",
            "role pgbridge_test_repl may not read table public.t for the initial snapshot: GRANT SELECT ON",
        ] {
            #expect(check.stderr.contains(expected), "missing \(expected) in \(check.stderr)")
        }
        let run = try await BridgeProcess.run(
            ["run", "--config", try config(user: "pgbridge_test_repl")], directory: directory)
        #expect(run.status == 3, "\(run.stderr.suffix(2000))")
        #expect(run.stderr.contains("may not create publication pub_\(db.name)"), "\(run.stderr.suffix(2000))")
        #expect(!run.stderr.contains("permission denied"), "\(run.stderr.suffix(2000))")

        let plain = try await BridgeProcess.run(
            ["check", "--config", try config(user: "pgbridge_test_plain")], directory: directory)
        #expect(
            plain.stderr.contains("role pgbridge_test_plain lacks REPLICATION, which logical replication needs"),
            "\(plain.stderr)")

        // With the publication made in advance by a superuser, the replication role is enough.
        try db.sql("CREATE PUBLICATION pub_\(db.name) FOR TABLE public.t")
        let ready = try await BridgeProcess.run(
            ["check", "--config", try config(user: "pgbridge_test_repl")], directory: directory)
        #expect(ready.status == 0, "\(ready.stderr)")
    }

    /// With an `api` section, `check` notes what the API will miss: the table of pipes created
    /// through it, until `pgbridge setup` ran (which also installs pg_walinspect for X-Commit-LSN).
    @Test func checkNotesWhatTheAPIWillMiss() async throws {
        let db = try TestDatabase(prefix: "api_notes")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let directory = try TestEnvironment.scratchDirectory("cli-api-notes")
        let config = try write(
            """
            postgres: {url: "\(db.url)"}
            state_dir: \(directory)/state
            api: {listen: "127.0.0.1:0", admin_token: test-admin-token-0123456789, jwt_secret: api-notes-secret-0123456789abcdef0123}
            """, in: directory)
        func check() async throws -> String {
            let process = try BridgeProcess(
                arguments: ["check", "--config", config], directory: directory, keepStdout: true)
            #expect(try await process.waitForExit() == 0, "\(process.stderr)")
            return process.stdout
        }
        let before = try await check()
        #expect(before.contains("note: api: table pgbridge.pipes does not exist"), "\(before)")
        #expect(before.contains("X-Commit-LSN: pg_walinspect is not installed"), "\(before)")
        #expect(try await BridgeProcess.run(["setup", "--config", config], directory: directory).status == 0)
        let after = try await check()
        #expect(!after.contains("note: api:"), "\(after)")
    }

    @Test func configErrorsExitTwo() async throws {
        let directory = try TestEnvironment.scratchDirectory("cli")
        let cases: [(String, String)] = [
            ("postgres: {url: x\npipes: [", "malformed YAML"),
            (
                """
                postgres: {url: "postgresql://u@127.0.0.1/db"}
                pipes:
                  - name: p
                    source: {tabels: [t]}
                    sinks: [{kind: file, path: o.jsonl}]
                """, "pipes[0].source.tabels: unknown key; did you mean 'tables'? (line 4)"
            ),
            (
                """
                postgres: {url: "postgresql://u@127.0.0.1/db"}
                pipes: [{name: p, source: {tables: t}, sinks: [{kind: file, path: o.jsonl}]}]
                """, "pipes[0].source.tables: expected a list, got a string"
            ),
        ]
        for (yaml, message) in cases {
            let config = try write(yaml, in: directory)
            for command in ["run", "check"] {
                let result = try await BridgeProcess.run([command, "--config", config], directory: directory)
                #expect(result.status == 2, "\(command): \(result.stderr)")
                #expect(result.stderr.contains(message), "\(command): \(result.stderr)")
            }
        }
        let missing = try await BridgeProcess.run(["run", "--config", "\(directory)/nope.yaml"], directory: directory)
        #expect(missing.status == 2 && missing.stderr.contains("cannot read config file"))
    }

    @Test func missingTableAndReplicaIdentityExitThree() async throws {
        let db = try TestDatabase(prefix: "cli")
        defer { db.drop() }
        try db.sql("CREATE TABLE nopk (a int, b text); CREATE TABLE ok (id int PRIMARY KEY)")
        let directory = try TestEnvironment.scratchDirectory("cli-db")
        for (tables, message) in [
            // (run names the pipe, check its index: pipes[test] / pipes[0])
            (["public.nope"], "table public.nope does not exist (pipes["),
            (["public.nope"], "].source.tables): create it, or fix or remove it in the config"),
            (["public.nopk"], "table public.nopk has no primary key and REPLICA IDENTITY DEFAULT"),
        ] {
            let config = try ConfigFile.write(
                directory: directory, url: db.url, tables: tables, slot: "pgbridge_\(db.name)",
                output: "\(directory)/o.jsonl")
            for command in ["run", "check"] {
                let result = try await BridgeProcess.run([command, "--config", config], directory: directory)
                #expect(result.status == 3, "\(command): \(result.stderr)")
                #expect(result.stderr.contains(message), "\(command): \(result.stderr)")
            }
        }
        let fix = try await BridgeProcess.run(
            [
                "check", "--config",
                try ConfigFile.write(
                    directory: directory, url: db.url, tables: ["public.nopk"], slot: "s_\(db.name)", output: "o.jsonl"),
            ],
            directory: directory)
        #expect(fix.stderr.contains("ALTER TABLE public.nopk REPLICA IDENTITY FULL"))
        // No slot or publication was created for a pipe that failed its checks.
        #expect(try db.value("SELECT count(*) FROM pg_replication_slots WHERE database = '\(db.name)'") == "0")
    }

    @Test func slotHeldByAnotherProcess() async throws {
        let db = try TestDatabase(prefix: "busy")
        defer { db.drop() }
        try db.sql("CREATE TABLE t (id int PRIMARY KEY)")
        let slot = "busy_\(db.name)"
        try db.sql("SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput')")
        // Another consumer streams from the slot.
        let holder = try PGConnection(url: db.url, mode: .replication)
        try holder.execute("CREATE PUBLICATION \(slot) FOR TABLE t")
        try holder.execute(
            "START_REPLICATION SLOT \(slot) LOGICAL 0/0 (proto_version '1', publication_names '\(slot)')")
        let directory = try TestEnvironment.scratchDirectory("busy")
        let config = try ConfigFile.write(
            directory: directory, url: db.url, tables: ["public.t"], slot: slot, output: "\(directory)/o.jsonl",
            extraSource: "slot_busy_timeout: 2s")
        let result = try await BridgeProcess.run(["run", "--config", config], directory: directory)
        #expect(result.status == 3, "\(result.stderr)")
        #expect(
            result.stderr.contains("replication slot \(slot) is in use by another process (PID"), "\(result.stderr)")
        #expect(result.stderr.contains("stop the other pgbridge or consumer"))
        let drop = try await BridgeProcess.run(["slots", "drop", slot, "--url", db.url], directory: directory)
        #expect(drop.status == 3 && drop.stderr.contains("in use by another process"))
        holder.endCopy()
    }

    @Test func unreachableDatabaseExitsOneOnCheck() async throws {
        let directory = try TestEnvironment.scratchDirectory("down")
        let config = try ConfigFile.write(
            directory: directory, url: "postgresql://postgres:secret@127.0.0.1:1/db", tables: ["t"], slot: "s",
            output: "o.jsonl")
        let result = try await BridgeProcess.run(["check", "--config", config], directory: directory)
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:1/db: "))
        #expect(result.stderr.contains(". Check postgres.url and that the server is running"))
        #expect(!result.stderr.contains("secret"))
        // A key=value string with spaces around '=' (libpq accepts them) is redacted too.
        let spaced = try ConfigFile.write(
            directory: directory, url: "host=127.0.0.1 port=1 user=postgres password = secret dbname=db", tables: ["t"],
            slot: "s", output: "o.jsonl")
        let second = try await BridgeProcess.run(["check", "--config", spaced], directory: directory)
        #expect(second.status == 1 && second.stderr.contains("cannot connect to PostgreSQL at host=127.0.0.1"))
        #expect(!second.stderr.contains("secret"), "\(second.stderr)")
        // A password on the command line is visible to other users: pgbridge says so.
        let cli = try await BridgeProcess.run(
            ["slots", "--url", "postgresql://postgres:secret@127.0.0.1:1/db"], directory: directory)
        #expect(cli.stderr.contains("warning: the password in --url can be seen by other users"), "\(cli.stderr)")
        #expect(!cli.stderr.contains("secret@"))
    }

    @Test func slotsListAndDrop() async throws {
        let db = try TestDatabase(prefix: "slots")
        defer { db.drop() }
        let slot = "list_\(db.name)"
        try db.sql("SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput')")
        let directory = try TestEnvironment.scratchDirectory("slots")
        let listing = try BridgeProcess(arguments: ["slots", "--url", db.url], directory: directory)
        #expect(try await listing.waitForExit() == 0)
        // Output goes to stdout, which BridgeProcess discards: check via the database instead.
        let drop = try await BridgeProcess.run(["slots", "drop", slot, "--url", db.url], directory: directory)
        #expect(drop.status == 0, "\(drop.stderr)")
        #expect(try db.value("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '\(slot)'") == "0")
        let again = try await BridgeProcess.run(["slots", "drop", slot, "--url", db.url], directory: directory)
        #expect(again.status == 3 && again.stderr.contains("does not exist"))
    }
}
