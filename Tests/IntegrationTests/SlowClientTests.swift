import Foundation
import Glibc
import Testing

/// Clients that stop reading a large REST-proxy result must not hold its PostgreSQL sessions:
/// after `api.write_timeout` their connections are closed and the sessions go back to the pool.
@Suite("Slow HTTP clients", .enabled(if: TestEnvironment.hasBinary))
struct SlowClientTests {
    /// A request whose answer is never read.
    static func stalledRequest(port: Int, path: String) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        // A small receive buffer: the server's writes stall sooner.
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TestFailure("cannot connect: errno \(errno)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else {
            throw TestFailure("cannot send the request")
        }
        return fd
    }

    @Test func clientsThatStopReadingDoNotHoldTheProxysSessions() async throws {
        let db = try TestDatabase(prefix: "slow_http")
        defer { db.drop() }
        let role = "slow_anon_\(db.name)"
        try db.sql(
            """
            CREATE ROLE \(role);
            CREATE TABLE big (id int PRIMARY KEY, pad text);
            INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g;
            CREATE TABLE small (id int PRIMARY KEY);
            INSERT INTO small VALUES (1), (2);
            GRANT SELECT ON big, small TO \(role);
            """)
        defer { _ = try? db.sql("DROP OWNED BY \(role); DROP ROLE \(role)") }
        let directory = try TestEnvironment.scratchDirectory("slow-http")
        let config = "\(directory)/pgbridge.yaml"
        try """
        postgres: {url: "\(db.url)"}
        state_dir: \(directory)/state
        api: {listen: "127.0.0.1:0", admin_token: \(HTTPAPITests.adminToken), anonymous_role: \(role),
              pool_size: 8, write_timeout: 5s}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try BridgeProcess(arguments: ["run", "--config", config], directory: directory)
        defer { bridge.kill(SIGKILL) }
        let port = try await APIClient.waitForPort(bridge)
        let stalled = try (0..<8).map { _ in try Self.stalledRequest(port: port, path: "/v1/tables/public.big") }
        defer { stalled.forEach { close($0) } }
        // Every stalled request got a pooled session: its answer has begun to arrive.
        try await waitFor("8 answers to begin", timeout: .seconds(60)) {
            stalled.allSatisfy { fd in
                var byte: UInt8 = 0
                return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
            }
        }
        let sessions = """
            SELECT count(*) FROM pg_stat_activity WHERE datname = '\(db.name)' AND query LIKE 'FETCH%'
              AND state = 'idle in transaction'
            """

        let started = ContinuousClock.now
        let ninth = try await APIClient(base: "http://127.0.0.1:\(port)", token: nil).get(
            "/v1/tables/public.small?order=id")
        let waited = ContinuousClock.now - started
        #expect(ninth.status == 200 && ninth.body.contains("\"id\":2"), "\(ninth.status) \(ninth.body)")
        // About 6 s alone (write_timeout is 5 s); 21–23 s were seen under the full suite on a
        // loaded 2-core VM. A session that never came back would answer 503 after the pool's
        // 10 s lease timeout instead of 200.
        #expect(waited < .seconds(40), "the ninth request waited \(waited)")
        // The stalled connections were closed by pgbridge and their sessions were given back.
        try await waitFor("the stalled sessions to end", timeout: .seconds(30)) { try db.value(sessions) == "0" }
        bridge.kill(SIGTERM)
        #expect(try await bridge.waitForExit() == 0)
    }
}
