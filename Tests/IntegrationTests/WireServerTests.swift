import BridgeCore
import CLibPQ
import Foundation
import Logging
import TestSupport
import Testing

@testable import WireProtocol

/// The wire-protocol server against real clients: psql, and postgres_fdw in a real PostgreSQL.
@Suite("Wire protocol server", .serialized)
struct WireServerTests {
    static let password = "wire-test-password-1"

    static func readings() -> MemoryTable {
        let start = Int64(1_795_000_000) * 1_000_000
        var rows: [[SQLValue]] = []
        for index in 1...40 {
            rows.append([
                .int(Int64(index)), .text(index % 3 == 0 ? "dev-c" : (index % 2 == 0 ? "dev-b" : "dev-a")),
                .timestamp(start + Int64(index) * 60_000_000),
                index == 13 ? .null : .json(JSONValue(parsing: "{\"temp\": \(20 + index % 7), \"ok\": true}")!),
            ])
        }
        return MemoryTable(
            schema: "mem", name: "readings",
            columns: [
                ForeignColumn("id", .int8, notNull: true), ForeignColumn("device", .text),
                ForeignColumn("at", .timestamptz), ForeignColumn("payload", .jsonb),
            ], rows: rows)
    }

    /// Runs `body` with a server on a free port.
    static func withServer(
        _ table: MemoryTable = readings(), _ body: (Int, MemoryTable) async throws -> Void
    ) async throws {
        let context = WireServerContext(
            catalog: MemoryCatalog(tables: [table], endless: EndlessTable()),
            users: ["bridge": SCRAMCredentials(password: password, salt: Array("0123456789abcdef".utf8))])
        try await withServer(context) { port in try await body(port, table) }
    }

    /// Runs `body` with a server of `context` on a free port.
    static func withServer(_ context: WireServerContext, _ body: (Int) async throws -> Void) async throws {
        var logger = Logger(label: "wire-test")
        logger.logLevel = .warning
        let server = WireServer(host: "127.0.0.1", port: 0, context: context, logger: logger)
        let task = Task { try await server.run() }
        defer { task.cancel() }
        // (Generous: under the full suite the test process's few threads are often busy.)
        try await waitFor("the wire server to listen", timeout: .seconds(60)) { server.boundPort != nil }
        try await body(server.boundPort!)
    }

    static func psql(_ port: Int, _ sql: String, user: String = "bridge", password: String = password) async throws
        -> (status: Int32, output: String)
    {
        let file = try TestEnvironment.scratchDirectory("psql") + "/query.sql"
        try sql.write(toFile: file, atomically: true, encoding: .utf8)
        return try await TestEnvironment.shellAsync(
            "PGPASSWORD='\(password)' PGCONNECT_TIMEOUT=5 psql 'host=127.0.0.1 port=\(port) user=\(user) dbname=pgbridge sslmode=prefer' -X -q -A -t -v ON_ERROR_STOP=1 -f '\(file)'"
        )
    }

    @Test func psqlQueriesTheTable() async throws {
        try await Self.withServer { port, _ in
            let result = try await Self.psql(
                port,
                """
                SELECT id, device, payload->>'temp' FROM mem.readings WHERE device = 'dev-c' AND id < 10 ORDER BY id DESC;
                SELECT count(*), max(id) FROM mem.readings WHERE payload IS NULL OR id IN (1, 2);
                BEGIN;
                DECLARE c1 CURSOR FOR SELECT id FROM mem.readings WHERE id > 35;
                DECLARE c2 CURSOR FOR SELECT device FROM mem.readings WHERE id = 1;
                FETCH 2 FROM c1;
                FETCH 100 FROM c2;
                FETCH 100 FROM c1;
                CLOSE c1;
                SAVEPOINT s1;
                SELECT no_such_column FROM mem.readings;
                """)
            #expect(result.status != 0)
            #expect(result.output.contains("9|dev-c|22\n6|dev-c|26\n3|dev-c|23"), "\(result.output)")
            #expect(result.output.contains("3|13"), "\(result.output)")
            #expect(result.output.contains("36\n37\ndev-a\n38\n39\n40"), "\(result.output)")
            #expect(result.output.contains("column \"no_such_column\" does not exist"), "\(result.output)")
        }
    }

    @Test func wrongPasswordAndUnknownUserAreRefused() async throws {
        try await Self.withServer { port, _ in
            let wrong = try await Self.psql(port, "SELECT 1", password: "not-the-password")
            #expect(wrong.status != 0)
            #expect(wrong.output.contains("password authentication failed for user \"bridge\""), "\(wrong.output)")
            let unknown = try await Self.psql(port, "SELECT 1", user: "mallory")
            #expect(unknown.status != 0)
            #expect(unknown.output.contains("password authentication failed for user \"mallory\""), "\(unknown.output)")
            let unknownTable = try await Self.psql(port, "SELECT * FROM mem.nothing")
            #expect(unknownTable.output.contains("relation \"mem.nothing\" does not exist"), "\(unknownTable.output)")
            #expect(unknownTable.output.contains("tables in mem: readings"), "\(unknownTable.output)")
            let fine = try await Self.psql(port, "SELECT 1 + 1")
            #expect(fine.status == 0 && fine.output == "2\n", "\(fine.output)")
            // A client in another encoding is told the fix before it sends anything.
            let latin1 = try await TestEnvironment.shellAsync(
                "PGCLIENTENCODING=LATIN1 PGPASSWORD='\(Self.password)' psql 'host=127.0.0.1 port=\(port) user=bridge dbname=pgbridge' -X -c 'SELECT 1'"
            )
            #expect(latin1.status != 0)
            #expect(
                latin1.output.contains("pgbridge speaks UTF8 only, not client_encoding \"LATIN1\""), "\(latin1.output)")
        }
    }

    /// Random bytes, truncated and oversized messages on raw sockets: each gets an error or a
    /// closed connection, and the server keeps serving.
    @Test func malformedBytesDoNotHurtTheServer() async throws {
        try await Self.withServer { port, _ in
            var generator = SystemRandomNumberGenerator()
            for round in 0..<60 {
                var bytes: [UInt8]
                switch round % 4 {
                case 0:
                    bytes = (0..<Int.random(in: 1...300, using: &generator)).map { _ in
                        UInt8.random(in: 0...255, using: &generator)
                    }
                case 1:
                    // SSLRequest, then junk.
                    bytes = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F] + [0x51, 0xFF, 0xFF, 0xFF, 0xFF]
                case 2:
                    // A huge startup length.
                    bytes = [0x7F, 0xFF, 0xFF, 0xFF] + Array(repeating: 1, count: 50)
                default:
                    // Truncated startup parameters.
                    bytes = [0, 0, 0, 9, 0, 3, 0, 0, 0x41]
                }
                let exchange = try RawSocket.exchange(port: port, bytes: bytes)
                #expect(
                    exchange.closed,
                    "round \(round): the server neither closed nor answered within 2 s \(bytes.prefix(16))")
                #expect(exchange.reply.count < 1_000_000)
            }
            let after = try await Self.psql(port, "SELECT 42")
            #expect(after.status == 0 && after.output == "42\n", "\(after.output)")
        }
    }

    /// psql sends a CancelRequest on SIGINT: the endless scan stops with 57014, and the
    /// connection goes on.
    @Test func cancelRequestStopsARunningScan() async throws {
        try await Self.withServer { port, _ in
            let file = try TestEnvironment.scratchDirectory("cancel") + "/query.sql"
            try "SELECT count(*) FROM mem.endless;\nSELECT 'after';\n".write(
                toFile: file, atomically: true, encoding: .utf8)
            let started = ContinuousClock.now
            let result = try await TestEnvironment.shellAsync(
                "PGPASSWORD='\(Self.password)' timeout -s INT 2 psql 'host=127.0.0.1 port=\(port) user=bridge dbname=pgbridge' -X -A -t -f '\(file)'"
            )
            #expect(result.output.contains("canceling statement due to user request"), "\(result.output)")
            #expect(ContinuousClock.now - started < .seconds(10))

            // psql ends a script on SIGINT; libpq shows that the connection itself goes on.
            let outcome = try await CancelProbe.run(
                conninfo: "host=127.0.0.1 port=\(port) user=bridge password=\(Self.password) dbname=pgbridge",
                endless: "SELECT count(*) FROM mem.endless", then: "SELECT 'after'")
            #expect(outcome.sqlState == "57014")
            #expect(outcome.after == "after", "the connection did not go on after the cancel")
        }
    }

    @Test(.enabled(if: TestEnvironment.hasPostgres))
    func postgresFDWImportsQueriesAndInserts() async throws {
        let database = try TestDatabase(prefix: "wire_fdw")
        defer { database.drop() }
        try await Self.withServer { port, table in
            try database.sql(
                """
                CREATE EXTENSION postgres_fdw;
                CREATE SERVER bridge FOREIGN DATA WRAPPER postgres_fdw
                    OPTIONS (host '127.0.0.1', port '\(port)', dbname 'pgbridge', fetch_size '5');
                CREATE USER MAPPING FOR CURRENT_USER SERVER bridge OPTIONS (user 'bridge', password '\(Self.password)');
                CREATE SCHEMA ext_mem;
                IMPORT FOREIGN SCHEMA mem FROM SERVER bridge INTO ext_mem;
                CREATE TABLE devices (name text PRIMARY KEY, site text);
                INSERT INTO devices VALUES ('dev-a', 'north'), ('dev-b', 'south');
                """)
            let columns = try database.sql(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'ext_mem' AND table_name = 'readings' ORDER BY ordinal_position"
            )
            #expect(
                columns.map { "\($0[0]!):\($0[1]!)" } == [
                    "id:bigint", "device:text", "at:timestamp with time zone", "payload:jsonb",
                ])
            let filtered = try database.sql(
                "SELECT id FROM ext_mem.readings WHERE id >= 30 AND device <> 'dev-c' AND payload->>'temp' = '22' ORDER BY id DESC LIMIT 3"
            )
            #expect(filtered.map { $0[0]! } == ["37"], "\(filtered)")
            let ranged = try database.sql(
                "SELECT id FROM ext_mem.readings WHERE at > '2026-11-18 11:06:40+00' AND at <= '2026-11-18 11:09:40+00' ORDER BY id"
            )
            #expect(ranged.map { $0[0]! } == ["1", "2", "3"], "\(ranged)")
            #expect(table.scans.withLock { $0.last?.bounds["at"]?.upper } != nil)
            let joined = try database.sql(
                "SELECT d.site, count(*) FROM ext_mem.readings r JOIN devices d ON d.name = r.device WHERE r.id <= 10 GROUP BY d.site ORDER BY d.site"
            )
            #expect(joined.map { "\($0[0]!)=\($0[1]!)" } == ["north=3", "south=4"], "\(joined)")
            let nulls = try database.sql(
                "SELECT id FROM ext_mem.readings WHERE payload IS NULL OR device IN ('none', 'dev-x') OR NOT (id > 1)")
            #expect(nulls.map { $0[0]! } == ["1", "13"], "\(nulls)")
            let liked = try database.value("SELECT count(*) FROM ext_mem.readings WHERE device LIKE '%-b'")
            #expect(liked == "14")
            let prepared = try database.sql(
                """
                PREPARE q(bigint) AS SELECT device FROM ext_mem.readings WHERE id = $1;
                EXECUTE q(4);
                """)
            #expect(prepared.map { $0[0]! } == ["dev-b"])
            try database.sql("ANALYZE ext_mem.readings")
            try database.sql(
                "INSERT INTO ext_mem.readings (id, device, at, payload) VALUES (100, 'dev-z', now(), '{\"temp\": 1}'), (101, 'dev-z', NULL, NULL)"
            )
            #expect(table.rows.withLock { $0.count } == 42)
            #expect(try database.value("SELECT count(*) FROM ext_mem.readings WHERE device = 'dev-z'") == "2")
            #expect(throws: (any Error).self) {
                try database.sql("SELECT id FROM ext_mem.readings WHERE md5(device) = 'x'")
            }
            do {
                try database.sql("SELECT id FROM ext_mem.readings WHERE md5(device) = 'x'")
            } catch {
                #expect("\(error)".contains("pgbridge cannot evaluate the function md5()"), "\(error)")
            }
            let explained = try database.sql("EXPLAIN (VERBOSE) SELECT id FROM ext_mem.readings WHERE id = 3")
            #expect(
                explained.contains {
                    $0[0]?.contains("Remote SQL: SELECT id FROM mem.readings WHERE ((id = 3))") == true
                }, "\(explained)")
            try database.sql("ALTER SERVER bridge OPTIONS (ADD use_remote_estimate 'true')")
            #expect(try database.value("SELECT count(*) FROM ext_mem.readings WHERE id < 5") == "4")
            // With remote estimates, a join with a local table costs parameterized paths with
            // `(SELECT null::text)` placeholders.
            let estimatedJoin = try database.sql(
                "SELECT d.site, count(*) FROM ext_mem.readings r JOIN devices d ON d.name = r.device WHERE r.id <= 10 GROUP BY d.site ORDER BY d.site"
            )
            #expect(estimatedJoin.map { "\($0[0]!)=\($0[1]!)" } == ["north=3", "south=4"], "\(estimatedJoin)")
            let skipped = try database.sql("SELECT id FROM ext_mem.readings ORDER BY id LIMIT ALL OFFSET 38")
            #expect(skipped.map { $0[0]! } == ["39", "40", "100", "101"], "\(skipped)")
        }
    }
}

/// A raw TCP client for malformed-input tests.
/// Cancels a running query with libpq's `PQcancel` (a CancelRequest on a second connection),
/// then runs another query on the same connection. Blocking: runs on a thread of its own.
enum CancelProbe {
    struct Outcome {
        var sqlState: String?
        var after: String?
    }

    static func run(conninfo: String, endless: String, then follow: String) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result { try runBlocking(conninfo: conninfo, endless: endless, then: follow) })
            }
            thread.start()
        }
    }

    private static func runBlocking(conninfo: String, endless: String, then follow: String) throws -> Outcome {
        guard let connection = PQconnectdb(conninfo) else { throw TestFailure("PQconnectdb returned nothing") }
        defer { PQfinish(connection) }
        guard PQstatus(connection) == CONNECTION_OK else {
            throw TestFailure("cannot connect: \(String(cString: PQerrorMessage(connection)))")
        }
        guard PQsendQuery(connection, endless) == 1 else { throw TestFailure("PQsendQuery failed") }
        Thread.sleep(forTimeInterval: 1)
        guard let cancel = PQgetCancel(connection) else { throw TestFailure("PQgetCancel returned nothing") }
        defer { PQfreeCancel(cancel) }
        var error = [CChar](repeating: 0, count: 256)
        guard PQcancel(cancel, &error, Int32(error.count)) == 1 else {
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw TestFailure("PQcancel failed: \(message)")
        }
        var outcome = Outcome()
        while let result = PQgetResult(connection) {
            if let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))) {
                outcome.sqlState = String(cString: state)
            }
            PQclear(result)
        }
        if let result = PQexec(connection, follow) {
            if PQresultStatus(result) == PGRES_TUPLES_OK, PQntuples(result) == 1 {
                outcome.after = String(cString: PQgetvalue(result, 0, 0))
            }
            PQclear(result)
        }
        return outcome
    }
}

enum RawSocket {
    struct Exchange {
        var reply: [UInt8]
        /// The server closed the connection (end of stream or reset) rather than going silent.
        var closed: Bool
    }

    /// Sends `bytes` and half-closes, then reads until the server closes or 2 s pass.
    static func exchange(port: Int, bytes: [UInt8]) throws -> Exchange {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TestFailure("connect failed") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 {
                reply += buffer[0..<count]
            } else if count == 0 {
                return Exchange(reply: reply, closed: true)
            } else if errno != EINTR {
                // EAGAIN: 2 s of silence on a connection the client already half-closed.
                return Exchange(reply: reply, closed: errno != EAGAIN && errno != EWOULDBLOCK)
            }
        }
    }
}

/// Least privilege for wire-protocol users: grants per user, pipe buffers only when granted, and
/// unknown user names that cannot be told from wrong passwords.
@Suite("Wire protocol users", .serialized)
struct WireUserTests {
    static let password = "wire-test-password-2"

    @Test func grantsDecideWhatEachUserMayReadAndWrite() async throws {
        let readings = WireServerTests.readings()
        let pipe = MemoryTable(
            schema: "pipes", name: "orders", columns: [ForeignColumn("id", .text)], rows: [[.text("1")]])
        let credentials = { SCRAMCredentials(password: Self.password, salt: Array(UUID().uuidString.utf8.prefix(16))) }
        let context = WireServerContext(
            catalog: MemoryCatalog(tables: [readings, pipe]),
            users: ["plain": credentials(), "reader": credentials(), "auditor": credentials()],
            grants: [
                "reader": WireGrants(read: ["mem.readings"], write: []),
                "auditor": WireGrants(read: ["pipes.orders"], write: []),
            ])
        try await WireServerTests.withServer(context) { port in
            try await Self.checkGrants(port)
        }
    }

    static func checkGrants(_ port: Int) async throws {
        func psql(_ user: String, _ sql: String) async throws -> (status: Int32, output: String) {
            try await WireServerTests.psql(port, sql, user: user, password: Self.password)
        }
        // A user without grants reads every table but the pipes' buffers.
        #expect(try await psql("plain", "SELECT count(*) FROM mem.readings").output.contains("40"))
        let hidden = try await psql("plain", "SELECT * FROM pipes.orders")
        #expect(
            hidden.status != 0 && hidden.output.contains("relation \"pipes.orders\" does not exist"), "\(hidden.output)"
        )
        // Granted by name.
        #expect(try await psql("auditor", "SELECT id FROM pipes.orders").output.contains("1"))
        let auditorReadings = try await psql("auditor", "SELECT * FROM mem.readings")
        #expect(auditorReadings.status != 0 && auditorReadings.output.contains("does not exist"))
        // Read without write.
        #expect(try await psql("reader", "SELECT count(*) FROM mem.readings").output.contains("40"))
        let write = try await psql("reader", "INSERT INTO mem.readings (id) VALUES (99)")
        #expect(
            write.status != 0 && write.output.contains("permission denied for table mem.readings"), "\(write.output)")
    }

    /// Unknown users get a salt of their own, stable per name, like real users: the salt does not
    /// tell which names exist.
    @Test func unknownUsersGetStablePerNameSalts() {
        let context = WireServerContext(catalog: MemoryCatalog(tables: []), users: [:])
        #expect(context.decoy(for: "ghost").salt == context.decoy(for: "ghost").salt)
        #expect(context.decoy(for: "ghost").salt != context.decoy(for: "other").salt)
        #expect(context.decoy(for: "ghost").salt.count == 16)
        let another = WireServerContext(catalog: MemoryCatalog(tables: []), users: [:])
        #expect(another.decoy(for: "ghost").salt != context.decoy(for: "ghost").salt)
    }
}
