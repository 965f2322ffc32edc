import BridgeRuntime
import Foundation
import TestSupport
import Testing

@testable import BridgeCore
@testable import Processing

@Suite("Processors and formats")
struct ProcessingTests {
    static let update = #"""
        {"id":"0/1A2B3C4D:3","op":"update","source":{"db":"app","schema":"public","table":"conditions","lsn":"0/1A2B3C00","commit_lsn":"0/1A2B3C4D","xid":745,"commit_time":"2026-11-20T10:00:00.123456Z","capture":"replication"},"key":{"id":1},"before":{"id":1,"temp":20.5,"device":"d-1","email":"alice@example.com","notes":"x"},"after":{"id":1,"temp":21.5,"device":"d-1","email":"alice@example.com","notes":"y","amount":"12.50","tags":null},"unchanged_toast":["payload"]}
        """#

    func batch(_ events: [String]) -> EventBatch { .fixture(events, checkpoint: LSN(42), sequence: 7) }

    func events(_ batch: EventBatch) -> [[String: Any]] {
        batch.eventEnds.indices.compactMap {
            try? JSONSerialization.jsonObject(with: Data(batch.body(at: $0))) as? [String: Any]
        }
    }

    func matches(_ expression: String, _ event: String = update) throws -> Bool {
        let filter = try FilterExpression(expression)
        let bytes = Array(event.utf8)
        return bytes.withUnsafeBufferPointer { filter.matches(EventFields.scan($0, event: 0..<$0.count), $0) }
    }

    @Test func filterExpressionsEvaluate() throws {
        #expect(try matches("temp > 21 and device != 'test'"))
        #expect(try !matches("temp > 30"))
        #expect(try matches("after.temp >= 21.5 and before.temp < 21"))
        #expect(try matches("op in ('insert', 'update') and table = 'conditions'"))
        #expect(try matches("source.schema = 'public' and not (op = 'delete')"))
        #expect(try matches("amount > 12 and amount < 13"))  // numeric as a string
        #expect(try matches("email like '%@example.com' and email not like 'bob%'"))
        #expect(try matches("device ilike 'D-_'"))
        #expect(try matches("tags is null and notes is not null and missing is null"))
        #expect(try !matches("tags = null"))
        #expect(try matches("op = 'delete' or temp > 21 and device = 'd-1'"))  // and binds tighter
        #expect(try !matches("(op = 'delete' or temp > 21) and device = 'd-2'"))
        #expect(try matches("key.id = 1 and after.id = 1 and xid = 745 and id = '0/1A2B3C4D:3'"))
        #expect(try matches("temp > -5 and device <> 'x' and device == 'd-1'"))
    }

    @Test(arguments: [
        ("temp >", "expected a field or a value but found the end of the filter", 7),
        ("temp > 30 and", "expected a field or a value but found the end of the filter", 14),
        ("temp >> 30", "expected a field or a value but found '>'", 7),
        ("device = 'abc", "unterminated string", 10),
        ("(temp > 1", "expected ')' but found the end of the filter", 10),
        ("op in 'insert'", "expected '(' after 'in'", 7),
        ("temp > 30 device", "unexpected 'device'", 11),
        ("source.nope = 1", "unknown field 'source.nope'", 1),
        ("temp ! 3", "unexpected character '!'", 6),
        ("", "the filter is empty", 1),
    ])
    func filterErrorsGiveThePosition(text: String, message: String, position: Int) {
        do {
            _ = try FilterExpression(text)
            Issue.record("no error for \(text)")
        } catch {
            #expect(error.message.hasPrefix(message), "\(error)")
            #expect(error.position == position, "\(error)")
        }
    }

    @Test func likePatterns() {
        func like(_ text: String, _ pattern: String, _ ci: Bool = false) -> Bool {
            LikePattern.matches(Array(text.utf8)[...], Array(pattern.utf8)[...], caseInsensitive: ci)
        }
        #expect(like("abc", "abc") && like("abc", "a%") && like("abc", "%c") && like("abc", "%b%"))
        #expect(like("abc", "a_c") && !like("abc", "a_") && like("", "%") && !like("", "_"))
        #expect(like("a%c", "a\\%c") && !like("abc", "a\\%c"))
        #expect(like("ABC", "a%", true) && !like("ABC", "a%"))
        #expect(like("aXbXc", "a%b%c") && !like("aXbX", "a%b%c"))
    }

    /// The filter's LIKE, as the wire server's: at most (text + 1) × (pattern + 1) steps on
    /// hostile patterns, and linear in the text for a fixed pattern.
    @Test func filterLikeIsLinearOnHostilePatterns() {
        for pattern in ["%a%a%a%a%a%a%a%a%a%a%a%b", "%_%_%_%_%_%_%_%b", "a%a%a%a%a%a%a%a%a%a%a%a%c"] {
            var costs: [Int] = []
            for length in [1_000, 2_000, 4_000] {
                var steps = 0
                let text = Array(repeating: UInt8(ascii: "a"), count: length)
                #expect(!LikePattern.matches(text[...], Array(pattern.utf8)[...], caseInsensitive: true, steps: &steps))
                #expect(steps <= (length + 1) * (pattern.utf8.count + 1), "\(pattern) on \(length): \(steps) steps")
                costs.append(steps)
            }
            #expect(costs[1] <= costs[0] * 5 / 2 && costs[2] <= costs[1] * 5 / 2, "\(pattern): \(costs)")
        }
    }

    @Test func maskAndDropRewriteRows() throws {
        let transform = EventTransform(
            pipe: "p",
            processors: [
                .mask(MaskConfig(columns: ["email"], method: .sha256)),
                .mask(
                    MaskConfig(
                        columns: ["device"], method: .redact, tables: [TablePattern(schema: "public", table: "other")])),
                .mask(MaskConfig(columns: ["id"], method: .md5)),
                .drop(DropConfig(columns: ["notes", "id"])),
            ], format: .native, version: "test")
        let out = transform.apply(batch([Self.update]))
        #expect(out.checkpoint == LSN(42) && out.sequence == 7)
        let event = try #require(events(out).first)
        let after = try #require(event.after)
        // sha256("alice@example.com")
        #expect(after["email"] as? String == "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976")
        #expect(after["device"] as? String == "d-1")  // that mask is for another table
        #expect(after["notes"] == nil && after["id"] == nil)
        #expect((event.before)?["notes"] == nil)
        // the key keeps its column (drop does not touch it), masked with md5("1")
        #expect(event.key?["id"] as? String == "c4ca4238a0b923820dcc509a6f75849b")
        #expect(after["tags"] is NSNull)
        #expect(event["unchanged_toast"] as? [String] == ["payload"])
    }

    @Test func filterDropsEventsButKeepsTheCheckpoint() {
        let transform = EventTransform(
            pipe: "p", processors: [.filter(try! FilterExpression("temp > 100"))], format: .native, version: "t")
        let out = transform.apply(batch([Self.update, Self.update]))
        #expect(out.eventCount == 0 && out.checkpoint == LSN(42) && out.sequence == 7)
    }

    @Test func routesMarkEvents() {
        let transform = EventTransform(
            pipe: "p",
            processors: [
                .route(RouteConfig(tables: [TablePattern(schema: "public", table: "orders")], sinks: ["a"])),
                .route(RouteConfig(tables: [TablePattern(schema: "public", table: nil)], sinks: ["b"])),
            ], format: .native, version: "t")
        let orders = Self.update.replacingOccurrences(of: "\"conditions\"", with: "\"orders\"")
        let message = #"{"id":"0/1:1","op":"message","source":{"db":"app"},"key":null,"before":null,"after":{}}"#
        let out = transform.apply(batch([orders, Self.update, message]))
        #expect(out.routes == [1, 2, 0])
    }

    @Test func debeziumEnvelopeMatchesTheGoldenFile() throws {
        var encoder = FormatEncoder(format: .debezium, pipe: "conditions", version: "0.1.0")
        encoder.nowMillis = 1_790_000_000_000
        var out: [UInt8] = []
        let bytes = Array(Self.update.utf8)
        bytes.withUnsafeBufferPointer { encoder.encode(EventFields.scan($0, event: 0..<$0.count), $0, into: &out) }
        let url = try #require(
            Bundle.module.url(forResource: "debezium-update", withExtension: "json", subdirectory: "Golden"))
        let golden = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(String(decoding: out, as: UTF8.self) == golden)
        let envelope = try #require(try JSONSerialization.jsonObject(with: Data(out)) as? [String: Any])
        #expect(envelope["op"] as? String == "u")
        let source = try #require(envelope["source"] as? [String: Any])
        #expect(source["ts_ms"] as? Int == 1_795_168_800_123)
        #expect(source["lsn"] as? Int == 0x1A2B_3C00 && source["txId"] as? Int == 745)
        #expect((envelope["after"] as? [String: Any])?["payload"] as? String == "__debezium_unavailable_value")
    }

    @Test func debeziumOperationCodes() throws {
        for (op, code) in [("insert", "c"), ("delete", "d"), ("read", "r"), ("truncate", "t"), ("message", "m")] {
            let event = Self.update.replacingOccurrences(of: "\"op\":\"update\"", with: "\"op\":\"\(op)\"")
            let out = EventTransform(pipe: "p", processors: [], format: .debezium, version: "t").apply(batch([event]))
            #expect(events(out).first?["op"] as? String == code)
        }
    }

    @Test func cloudEventsStructured() throws {
        let out = EventTransform(pipe: "conditions", processors: [], format: .cloudevents, version: "t").apply(
            batch([Self.update]))
        let event = try #require(events(out).first)
        #expect(event["specversion"] as? String == "1.0")
        #expect(event["id"] as? String == "0/1A2B3C4D:3")
        #expect(event["source"] as? String == "/pgbridge/app/conditions")
        #expect(event["type"] as? String == "io.pgbridge.change.update")
        #expect(event["subject"] as? String == "public.conditions")
        #expect(event["time"] as? String == "2026-11-20T10:00:00.123456Z")
        #expect((event["data"] as? [String: Any])?.after?["temp"] as? Double == 21.5)
        let body = Array(out.body(at: 0))
        let fields = body.withUnsafeBufferPointer { CloudEventFields.scan($0, event: 0..<$0.count) }
        // the native event stays in `bytes` for the sinks' keys and topics
        #expect(String(decoding: out.event(at: 0), as: UTF8.self) == Self.update)
        #expect(fields.attributes.count == 6 && fields.data != nil)
    }

    @Test func processorConfigParsesAndReportsPositions() throws {
        let config = try BridgeConfig.parse(
            yaml: """
                postgres: {url: "postgresql://x@h/db"}
                pipes:
                  - name: p
                    source: {tables: [t]}
                    format: debezium
                    processors:
                      - filter: "temp > 30 and device != 'test'"
                      - mask: {columns: [device], with: sha256}
                      - drop: [internal_notes]
                      - route: {tables: [public.orders], sinks: [orders], topic: "orders.{op}"}
                    sinks: [{kind: file, path: a, name: orders}, {kind: file, path: b, name: rest}]
                """, registry: .standard)
        #expect(config.pipes[0].processors.count == 4 && config.pipes[0].format == .debezium)
        let filter = configError(processors: #"[{filter: "temp > 30 and"}]"#)
        #expect(filter?.path == "pipes[0].processors[0].filter")
        #expect(filter?.message.contains("at position 14") == true, "\(String(describing: filter))")
        let route = configError(processors: "[{route: {tables: [t], sinks: [nope]}}]")
        #expect(route?.message.contains("no sink named 'nope'") == true, "\(String(describing: route))")
        let hash = configError(
            processors: #"[{route: {tables: [t], topic: "all-in-one"}}]"#,
            sinks: #"[{kind: redis, url: "redis://h", mode: hash}]"#)
        #expect(hash?.message.contains("mirrors rows as hashes") == true, "\(String(describing: hash))")
    }
}

/// The error of a one-pipe configuration with these processors and sinks (nil: it parsed).
func configError(processors: String, sinks: String = "[{kind: file, path: a}]") -> ConfigError? {
    do {
        _ = try BridgeConfig.parse(
            yaml: """
                postgres: {url: "postgresql://x@h/db"}
                pipes:
                  - name: p
                    source: {tables: [t]}
                    processors: \(processors)
                    sinks: \(sinks)
                """, registry: .standard)
        return nil
    } catch {
        return error as? ConfigError
    }
}

extension Dictionary where Key == String, Value == Any {
    var after: [String: Any]? { self["after"] as? [String: Any] }
    var before: [String: Any]? { self["before"] as? [String: Any] }
    var key: [String: Any]? { self["key"] as? [String: Any] }
}
