import AsyncHTTPClient
import BridgeCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Sends events to an HTTP endpoint: one event per request (its JSON, or a rendered template),
/// or a JSON array of `batch_count` events.
///
/// `parallelism` lanes send concurrently; events are assigned to lanes by their key, and a lane
/// sends in order, so events of one key stay in order. 2xx acknowledges; 408, 429 and 5xx
/// reject the request's events and the rest of its lane for a retry (honouring
/// `Retry-After`); other 4xx reject the request's events for good (dead letter); connection
/// errors and timeouts fail the delivery, which the pipe retries.
public final class HTTPSink: EventSink {
    public let config: HTTPSinkConfig
    let client: HTTPClient
    let logger: Logger
    let template: BodyTemplate?
    let tokens: OAuth2TokenSource?
    let userAgent: String
    /// The pipe's format: CloudEvents change the content type, or (binary mode) move the
    /// attributes to `ce-*` headers.
    let format: EventFormat

    public init(
        config: HTTPSinkConfig, client: HTTPClient = HTTPSink.client, format: EventFormat = .native,
        version: String = "dev",
        logger: Logger
    ) throws {
        self.config = config
        self.format = format
        self.client = client
        self.logger = logger
        self.template = try config.template.map { try BodyTemplate($0) }
        self.tokens = config.oauth2.map { OAuth2TokenSource(config: $0, client: client, timeout: config.timeout) }
        self.userAgent = "pgbridge/\(version)"
    }

    /// The URL without query string or credentials (they may hold secrets).
    public var description: String { "http:\(config.method) \(Self.redacted(config.url))" }

    /// The HTTP client of every HTTP sink: redirects are not followed (a 301/302 would turn the
    /// POST into a GET without the events, and carry the headers to another host).
    public static let client = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: HTTPClient.Configuration(redirectConfiguration: .disallow))

    static func redacted(_ url: String) -> String { Redaction.redactHTTPURL(url) }

    public func open() async throws {
        if let tokens { _ = try await tokens.accessToken() }
    }

    public func close() async {}

    public func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
        let lanes = plan(batches)
        return try await withThrowingTaskGroup(of: [Rejection].self) { group in
            for lane in lanes where !lane.isEmpty {
                group.addTask { try await self.send(lane) }
            }
            var rejected: [Rejection] = []
            for try await laneRejections in group { rejected += laneRejections }
            return DeliveryResult(rejected: rejected)
        }
    }

    /// One request: its body and the events it carries.
    struct PlannedRequest: Sendable {
        var body: [UInt8]
        var events: [(batch: Int, event: Int)]
        var idempotencyKey: String
        /// CloudEvents binary mode: `ce-*` headers.
        var headers: [(String, String)] = []
    }

    var isBinaryCloudEvents: Bool {
        format == .cloudevents && config.contentMode == .binary && config.batchCount == 1 && template == nil
    }

    /// Splits the events into lanes by key and builds the request bodies.
    func plan(_ batches: [EventBatch]) -> [[PlannedRequest]] {
        let laneCount = config.parallelism
        var lanes = [[PlannedRequest]](repeating: [], count: laneCount)
        var open = [PlannedRequest?](repeating: nil, count: laneCount)
        var firstIDs = [String](repeating: "", count: laneCount)
        for (batchIndex, batch) in batches.enumerated() {
            batch.forEachEvent { bytes, eventIndex, fields, eventBody in
                let lane = laneCount == 1 ? 0 : Self.lane(of: fields, bytes, count: laneCount)
                // Only a request's first and last events need their id as text (not every event
                // of a batch).
                func idText() -> String { fields.id.map { String(decoding: bytes[$0], as: UTF8.self) } ?? "" }
                if isBinaryCloudEvents {
                    // Binary content mode: attributes as ce-* headers, the data as the body.
                    let cloudEvent = CloudEventFields.scan(eventBody, event: 0..<eventBody.count)
                    var headers: [(String, String)] = []
                    for attribute in cloudEvent.attributes {
                        var value: [UInt8] = []
                        JSONScanner(eventBody).appendUnescaped(attribute.value, into: &value)
                        headers.append(
                            (
                                "ce-" + String(decoding: eventBody[attribute.name], as: UTF8.self),
                                String(decoding: value, as: UTF8.self)
                            ))
                    }
                    let body = cloudEvent.data.map { Array(eventBody[$0]) } ?? Array(eventBody)
                    lanes[lane].append(
                        PlannedRequest(
                            body: body, events: [(batchIndex, eventIndex)], idempotencyKey: idText(), headers: headers))
                    return
                }
                if config.batchCount == 1 {
                    var body: [UInt8] = []
                    appendBody(fields, bytes, eventBody, into: &body)
                    lanes[lane].append(
                        PlannedRequest(body: body, events: [(batchIndex, eventIndex)], idempotencyKey: idText()))
                    return
                }
                if open[lane] == nil {
                    firstIDs[lane] = idText()
                    open[lane] = PlannedRequest(body: [UInt8(ascii: "[")], events: [], idempotencyKey: firstIDs[lane])
                } else {
                    open[lane]!.body.append(UInt8(ascii: ","))
                }
                open[lane]!.body.append(contentsOf: eventBody)
                open[lane]!.events.append((batchIndex, eventIndex))
                if open[lane]!.events.count == config.batchCount {
                    open[lane]!.body.append(UInt8(ascii: "]"))
                    open[lane]!.idempotencyKey = "\(firstIDs[lane])..\(idText())"
                    lanes[lane].append(open[lane]!)
                    open[lane] = nil
                }
            }
        }
        for lane in 0..<laneCount {
            guard var request = open[lane], let last = request.events.last else { continue }
            request.body.append(UInt8(ascii: "]"))
            let lastID = batches[last.batch].bytes.withUnsafeBufferPointer { bytes in
                EventFields.scan(bytes, event: batches[last.batch].eventRange(at: last.event)).id.map {
                    String(decoding: bytes[$0], as: UTF8.self)
                } ?? ""
            }
            request.idempotencyKey = request.events.count == 1 ? firstIDs[lane] : "\(firstIDs[lane])..\(lastID)"
            lanes[lane].append(request)
        }
        return lanes
    }

    private func appendBody(
        _ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, _ eventBody: UnsafeBufferPointer<UInt8>,
        into body: inout [UInt8]
    ) {
        guard let template else {
            body.append(contentsOf: eventBody)
            return
        }
        switch config.preset {
        case .slack:
            JSONBytes.appendRaw("{\"text\":\"", into: &body)
            template.render(fields, bytes, escapeJSON: true, into: &body)
            JSONBytes.appendRaw("\"}", into: &body)
        case .none:
            template.render(fields, bytes, escapeJSON: template.isJSON, into: &body)
        }
    }

    private var contentType: String {
        if let template, config.preset == .none, !template.isJSON { return "text/plain; charset=utf-8" }
        if format == .cloudevents, template == nil, !isBinaryCloudEvents {
            return config.batchCount > 1 ? "application/cloudevents-batch+json" : "application/cloudevents+json"
        }
        return "application/json"
    }

    /// FNV-1a of the key (or of the event when it has none).
    static func lane(of fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, count: Int) -> Int {
        let range = fields.key.flatMap { JSONScanner(bytes).isNull($0) ? nil : $0 } ?? fields.event
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes[range] {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return Int(hash % UInt64(count))
    }

    enum Outcome {
        case delivered
        case rejected(reason: String, permanent: Bool, retryAfter: Duration?)
    }

    /// Sends a lane's requests in order; after a retriable rejection the rest of the lane is
    /// rejected too, so a key's later events never overtake an earlier one.
    private func send(_ lane: [PlannedRequest]) async throws -> [Rejection] {
        var rejections: [Rejection] = []
        for (index, request) in lane.enumerated() {
            switch try await execute(request) {
            case .delivered:
                continue
            case .rejected(let reason, true, _):
                for event in request.events {
                    rejections.append(
                        Rejection(batch: event.batch, event: event.event, reason: reason, isPermanent: true))
                }
            case .rejected(let reason, false, let retryAfter):
                for pending in lane[index...] {
                    for event in pending.events {
                        rejections.append(
                            Rejection(
                                batch: event.batch, event: event.event, reason: reason, isPermanent: false,
                                retryAfter: retryAfter))
                    }
                }
                return rejections
            }
        }
        return rejections
    }

    private func execute(_ planned: PlannedRequest, tokenRefreshed: Bool = false) async throws -> Outcome {
        var request = HTTPClientRequest(url: config.url)
        request.method = HTTPMethod(rawValue: config.method)
        request.headers.add(name: "Content-Type", value: contentType)
        request.headers.add(name: "User-Agent", value: userAgent)
        request.headers.add(name: "Idempotency-Key", value: planned.idempotencyKey)
        for header in planned.headers { request.headers.add(name: header.0, value: header.1) }
        for header in config.headers { request.headers.replaceOrAdd(name: header.name, value: header.value) }
        if let tokens {
            request.headers.replaceOrAdd(name: "Authorization", value: "Bearer \(try await tokens.accessToken())")
        }
        request.body = .bytes(planned.body)
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .nanoseconds(config.timeout.nanosecondCount))
        } catch {
            throw SinkError(sink: description, message: "request failed: \(error)")
        }
        let status = response.status.code
        let body = try? await response.body.collect(upTo: 4096)
        if (200..<300).contains(status) { return .delivered }
        if status == 401, let tokens, !tokenRefreshed {
            await tokens.invalidate()
            return try await execute(planned, tokenRefreshed: true)
        }
        var reason = "HTTP \(status)"
        if let body, body.readableBytes > 0 {
            reason += ": " + String(buffer: body).prefix(300).replacingOccurrences(of: "\n", with: " ")
        }
        if (300..<400).contains(status) {
            let location = response.headers.first(name: "Location").map { " to \(Self.redacted($0))" } ?? ""
            reason = "HTTP \(status): redirect\(location) not followed: set url to the final address"
        }
        let retriable = status == 408 || status == 429 || status >= 500
        var retryAfter: Duration?
        if retriable, let header = response.headers.first(name: "Retry-After"), let seconds = Int(header) {
            retryAfter = .seconds(seconds)
        }
        return .rejected(reason: reason, permanent: !retriable, retryAfter: retryAfter)
    }
}
