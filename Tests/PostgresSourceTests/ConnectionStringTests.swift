import Testing

@testable import PostgresClient
@testable import PostgresSource

@Suite("Connection strings read by libpq")
struct ConnectionStringTests {
    /// Whatever libpq would take as the password is redacted, however it was written.
    @Test func passwordsAreRedactedInEveryFormLibpqAccepts() {
        let cases: [(String, String)] = [
            ("host=h user=u password = secret dbname=d", "host=h user=u password=*** dbname=d"),
            (#"host=h password='it\'s secret' dbname=d"#, "host=h password=*** dbname=d"),
            ("postgresql://u:secret@h:5432/d?sslmode=require", "postgresql://u:***@h:5432/d?sslmode=require"),
            ("postgresql://u@h/d?pass%77ord=secret", "postgresql://u:***@h/d"),
            (
                "postgresql://h/d?password=secret&application_name=a%20b",
                "postgresql://h/d?password=***&application_name=a%20b"
            ),
            ("postgresql://u@h1:1,h2:2/d", "postgresql://u@/d?host=h1%2Ch2&port=1%2C2"),
            ("host=/var/run/postgresql dbname=d", "host=/var/run/postgresql dbname=d"),
        ]
        for (input, expected) in cases {
            let redacted = ConnectionString.redact(input)
            #expect(redacted == expected, "\(input)")
            #expect(!redacted.contains("secret"), "\(input)")
        }
        // Free text (an error message) falls back to patterns.
        #expect(ConnectionString.redact("could not connect: password = x") == "could not connect: password = ***")
    }

    @Test func passwordsAreFoundWhereverLibpqWouldTakeThem() {
        #expect(ConnectionString("postgresql://u:pw@h/d")?.hasPassword == true)
        #expect(ConnectionString("host=h password = pw")?.hasPassword == true)
        #expect(ConnectionString("postgresql://u@h/d?pass%77ord=pw")?.hasPassword == true)
        #expect(ConnectionString("postgresql://u@h/d")?.hasPassword == false)
        #expect(ConnectionString("not a connection string") == nil)
    }

    @Test func theURLsOwnOptionsAreKept() {
        #expect(
            ConnectionString("postgresql://h/d?options=-c%20lc_messages%3DC")?.value("options") == "-c lc_messages=C")
    }
}
