import BridgeCore
import BridgeRuntime
import FileSink
import Testing

@Suite("Configuration parsing and validation")
struct ConfigTests {
    static let valid = """
        postgres:
          url: postgresql://app:${PGPASSWORD}@127.0.0.1:5432/app
        state_dir: /var/lib/pgbridge
        pipes:
          - name: conditions
            source:
              kind: replication
              tables: [public.conditions, "public.*", orders, '"Mixed".Case']
            sinks:
              - kind: file
                path: ./events.jsonl
          - name: audit
            source:
              tables: [audit.log]
              slot: audit_slot
              publication: audit_pub
              status_interval: 2s
              messages: false
            format: native
            sinks: [{kind: file, path: "-", fsync: false}]
        """

    @Test func validConfigWithDefaults() throws {
        let config = try BridgeConfig.parse(
            yaml: Self.valid, registry: .standard, environment: ["PGPASSWORD": "s3cret"])
        #expect(config.postgres.url == "postgresql://app:s3cret@127.0.0.1:5432/app")
        #expect(config.postgres.redactedURL == "postgresql://app:***@127.0.0.1:5432/app")
        #expect(config.stateDirectory == "/var/lib/pgbridge")
        #expect(config.pipes.count == 2)
        guard case .replication(let first) = config.pipes[0].source else {
            Issue.record("expected replication"); return
        }
        #expect(first.slot == "pgbridge_conditions")
        #expect(first.publication == "pgbridge_conditions")
        #expect(first.statusInterval == .seconds(10))
        #expect(first.messages)
        #expect(
            first.tables == [
                TablePattern(schema: "public", table: "conditions"), TablePattern(schema: "public", table: nil),
                TablePattern(schema: "public", table: "orders"), TablePattern(schema: "Mixed", table: "case"),
            ])
        guard let file = config.pipes[0].sinks[0].settings as? FileSinkConfig else {
            Issue.record("expected file sink"); return
        }
        #expect(file.path == "./events.jsonl" && file.fsync)
        guard case .replication(let second) = config.pipes[1].source else {
            Issue.record("expected replication"); return
        }
        #expect(second.slot == "audit_slot" && second.publication == "audit_pub")
        #expect(second.statusInterval == .seconds(2))
        #expect(!second.messages)
        guard let stdout = config.pipes[1].sinks[0].settings as? FileSinkConfig else {
            Issue.record("expected file sink"); return
        }
        #expect(stdout.path == "-" && !stdout.fsync)
    }

    func error(_ yaml: String, environment: [String: String] = [:]) -> ConfigError? {
        do {
            _ = try BridgeConfig.parse(yaml: yaml, registry: .standard, environment: environment)
            return nil
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    @Test func unknownKeyNamesThePathAndSuggests() {
        let e = error(
            """
            postgres: {url: "postgresql://x@h/db"}
            pipes:
              - name: p
                source:
                  tabels: [public.t]
                sinks: [{kind: file, path: out.jsonl}]
            """)
        #expect(e?.description == "pipes[0].source.tabels: unknown key; did you mean 'tables'? (line 5)")
    }

    @Test func wrongTypeNamesThePath() {
        let e = error(
            """
            postgres: {url: "postgresql://x@h/db"}
            pipes:
              - name: p
                source: {tables: public.t}
                sinks: [{kind: file, path: out.jsonl}]
            """)
        #expect(e?.path == "pipes[0].source.tables")
        #expect(e?.message == "expected a list, got a string")
    }

    @Test func malformedYAML() {
        let e = error("postgres: {url: x\npipes: [")
        #expect(e?.message.hasPrefix("malformed YAML") == true)
        #expect(e?.line != nil)
    }

    @Test func missingEnvironmentVariable() {
        let e = error(
            """
            postgres: {url: "postgresql://u:${DB_PASS}@h/db"}
            pipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}]}]
            """)
        #expect(e?.path == "postgres.url")
        #expect(e?.message.contains("DB_PASS is not set") == true)
    }

    @Test func environmentDefault() throws {
        let config = try BridgeConfig.parse(
            yaml: """
                postgres: {url: "postgresql://u@${DB_HOST:-127.0.0.1}/db"}
                pipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}]}]
                """, registry: .standard)
        #expect(config.postgres.url == "postgresql://u@127.0.0.1/db")
    }

    @Test(arguments: [
        ("pipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}]}]", "postgres", "missing"),
        ("postgres: {url: 'postgresql://h/d'}", "pipes", "missing"),
        ("postgres: {url: 'postgresql://h/d'}\npipes: []", "pipes", "empty"),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: P-1, source: {tables: [t]}, sinks: [{kind: file, path: o}]}]",
            "pipes[0].name", "not a valid pipe name"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: []}, sinks: [{kind: file, path: o}]}]",
            "pipes[0].source.tables", "empty"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [t]}, sinks: []}]",
            "pipes[0].sinks", "empty"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [t]}, sinks: [{kind: fiel, path: o}]}]",
            "pipes[0].sinks[0].kind", "unknown sink kind"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {kind: cdc, tables: [t]}, sinks: [{kind: file, path: o}]}]",
            "pipes[0].source.kind", "unknown source kind"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [t], status_interval: 5 minutes}, sinks: [{kind: file, path: o}]}]",
            "pipes[0].source.status_interval", "expected a duration"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [t], messages: maybe}, sinks: [{kind: file, path: o}]}]",
            "pipes[0].source.messages", "expected true or false"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}]}, {name: p, source: {tables: [u], slot: other}, sinks: [{kind: file, path: o}]}]",
            "pipes[1]", "used twice"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [t], slot: s}, sinks: [{kind: file, path: o}]}, {name: q, source: {tables: [u], slot: s}, sinks: [{kind: file, path: o}]}]",
            "pipes[1]", "also used by pipe 'p'"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [a.b.c]}, sinks: [{kind: file, path: o}]}]",
            "pipes[0].source.tables[0]", "not a table name"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file}]}]",
            "pipes[0].sinks[0]", "missing path"
        ),
        (
            "postgres: {url: 'postgresql://h/d'}\npipes: [{name: p, source: {tables: [t]}, format: avro, sinks: [{kind: file, path: o}]}]",
            "pipes[0].format", "unknown format"
        ),
        (
            "postgres: {url: 'mysql://h/d'}\npipes: [{name: p, source: {tables: [t]}, sinks: [{kind: file, path: o}]}]",
            "postgres.url", "expected a postgresql:// URL"
        ),
    ])
    func invalidConfigs(yaml: String, path: String, fragment: String) {
        let e = error(yaml)
        #expect(e?.path == path, "\(e?.description ?? "no error")")
        #expect(e?.message.contains(fragment) == true, "\(e?.description ?? "no error")")
    }

    @Test func secretsAreRedacted() {
        #expect(
            Redaction.redactConnectionString("postgresql://u:pa:ss@h:5432/d?sslmode=require")
                == "postgresql://u:***@h:5432/d?sslmode=require")
        #expect(
            Redaction.redactConnectionString("host=h user=u password=secret dbname=d")
                == "host=h user=u password=*** dbname=d")
        #expect(Redaction.redactConnectionString("host=h password='a b' dbname=d") == "host=h password=*** dbname=d")
        #expect(
            Redaction.redactConnectionString("postgresql://h/d?password=x&user=u")
                == "postgresql://h/d?password=***&user=u")
        #expect(Redaction.redactConnectionString("postgresql://u@h/d") == "postgresql://u@h/d")
        // Spaces around '=' and escaped quotes are libpq syntax too.
        #expect(
            Redaction.redactConnectionString("host=h password = secret dbname=d") == "host=h password = *** dbname=d")
        #expect(
            Redaction.redactConnectionString(#"host=h PASSWORD='it\'s secret' sslpassword=k"#)
                == "host=h PASSWORD=*** sslpassword=***")
    }
}

@Suite("API configuration")
struct APIConfigTests {
    let base = "postgres: {url: \"postgresql://u@127.0.0.1/db\"}\n"

    @Test func parsesTheAPISectionWithoutPipes() throws {
        let config = try BridgeConfig.parse(
            yaml: base + """
                api: {listen: "0.0.0.0:9090", admin_token: "${ADMIN}", jwt_secret: "0123456789abcdef0123456789abcdef",
                      anonymous_role: web_anon, buffer_events: 500}
                """, registry: .standard, environment: ["ADMIN": "a-very-long-admin-token"])
        let api = try #require(config.api)
        #expect(api.host == "0.0.0.0" && api.port == 9090)
        #expect(api.adminToken == "a-very-long-admin-token")
        #expect(api.anonymousRole == "web_anon" && api.bufferEvents == 500)
        #expect(config.pipes.isEmpty)
        #expect(!"\(api)".contains("a-very-long-admin-token"))
        #expect(!api.jwtRequireExp && api.jwtAudience == nil && api.jwtIssuer == nil)
        let strict = try BridgeConfig.parse(
            yaml: base + """
                api: {jwt_secret: "0123456789abcdef0123456789abcdef", jwt_require_exp: true, jwt_audience: app,
                      jwt_issuer: "https://id.example"}
                """, registry: .standard
        ).api
        #expect(
            strict?.jwtRequireExp == true && strict?.jwtAudience == "app" && strict?.jwtIssuer == "https://id.example")
        let rest = try #require(
            try BridgeConfig.parse(
                yaml: base + """
                    api: {rest_path: /rest, rest_schemas: [api, public], rest_allow_tx_override: true,
                          jwt_role_claim: .app_metadata.role, rest_pre_request: auth.check}
                    """, registry: .standard
            ).api)
        #expect(rest.restPath == "/rest" && rest.restSchemas == ["api", "public"] && rest.restAllowTransactionOverride)
        #expect(rest.jwtRoleClaim == ".app_metadata.role")
        #expect(rest.restPreRequest?.schema == "auth" && rest.restPreRequest?.name == "check")
    }

    @Test func rejectsWeakOrConflictingSettings() {
        let cases: [(String, String)] = [
            ("api: {listen: \"localhost\"}", "api.listen"),
            ("api: {admin_token: short}", "api.admin_token"),
            ("api: {jwt_secret: tooshort}", "api.jwt_secret"),
            ("api: {jwt_secret: \"0123456789abcdef0123456789abcdef\", jwt_public_key: x}", "api.jwt_secret"),
            ("api: {anonymous_writes: true}", "api.anonymous_writes"),
            ("api: {buffer_event: 5}", "did you mean 'buffer_events'"),
            ("api: {jwt_audience: x}", "api.jwt_audience: needs jwt_secret or jwt_public_key"),
            ("api: {rest_path: /v1/pipes}", "api.rest_path"),
            ("api: {rest_path: rest}", "api.rest_path"),
            ("api: {rest_schemas: [public, pgbridge]}", "pgbridge is never served"),
            ("api: {rest_schemas: [pg_catalog]}", "api.rest_schemas"),
            ("api: {jwt_role_claim: role}", "api.jwt_role_claim"),
            ("api: {rest_pre_request: \"x; DROP TABLE t\"}", "api.rest_pre_request"),
        ]
        expectConfigErrors(cases, base: base)
    }

    @Test func parsesAPipeFromJSON() throws {
        let pipe = try BridgeConfig.parsePipe(
            text:
                #"{"name": "p1", "source": {"tables": ["public.t"]}, "sinks": [{"kind": "file", "path": "-"}]}"#,
            registry: .standard)
        #expect(pipe.name == "p1")
        #expect(throws: ConfigError.self) {
            try BridgeConfig.parsePipe(
                text: #"{"name": "p1", "source": {"tables": ["public.t"]}, "sinks": []"#, registry: .standard)
        }
    }
}
