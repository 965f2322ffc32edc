import BridgeCore
import CRabbitMQ
import Foundation

/// A message as RabbitMQ delivered it: to a peek (which returns it to its queue) or to a
/// consumer (`ConsumedMessage`).
public struct AMQPMessage: Sendable {
    public var exchange: String
    public var routingKey: String
    public var redelivered: Bool
    public var headers: [(String, String?)]
    /// The `message-id` property, when the publisher set one.
    public var messageID: String? = nil
    public var body: [UInt8]
}

extension AMQPConnection {
    /// The channel peeks use: closing it returns every message it got to the queue.
    static let peekChannel: amqp_channel_t = 2

    /// Up to `limit` messages from the head of `queue`, without consuming them: they are
    /// fetched unacknowledged on a separate channel, which is then closed, so RabbitMQ puts
    /// them back in their places (marked redelivered).
    public func peek(queue: String, limit: Int) throws -> [AMQPMessage] {
        try ready()
        guard let state else { throw failure("not connected") }
        amqp_channel_open(state, Self.peekChannel)
        var peekChannelOpen = true
        try checkPeek(amqp_get_rpc_reply(state), "channel.open", channelOpen: &peekChannelOpen)
        defer {
            // Closing the channel returns every message it got to the queue. A channel the
            // broker closed (an error) must not be closed again: that is a connection error.
            if self.state != nil, peekChannelOpen {
                amqp_channel_close(state, Self.peekChannel, AMQP_REPLY_SUCCESS)
            }
            if let current = self.state { amqp_maybe_release_buffers(current) }
        }
        var messages: [AMQPMessage] = []
        while messages.count < limit {
            let reply = queue.withCString { name in
                amqp_basic_get(state, Self.peekChannel, amqp_cstring_bytes(name), 0)
            }
            try checkPeek(reply, "basic.get from queue \(queue)", channelOpen: &peekChannelOpen)
            guard reply.reply.id == pgbridge_amqp_basic_get_ok else { break }  // get-empty
            let ok = reply.reply.decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
            var message = try readMessage(on: Self.peekChannel, "a message of \(queue)")
            defer { amqp_destroy_message(&message) }
            messages.append(
                AMQPMessage(
                    exchange: Self.string(ok.exchange), routingKey: Self.string(ok.routing_key),
                    redelivered: ok.redelivered != 0, headers: Self.headers(message.properties),
                    body: message.body.bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: message.body.len)) }
                        ?? []))
            if ok.message_count == 0 { break }
        }
        return messages
    }

    /// Publishes one message and waits for the broker's confirmation; an unroutable message
    /// (no queue bound for its routing key) is an error.
    public func publishConfirmed(
        exchange: String, routingKey: String, body: [UInt8], headers: [(String, String)], timeout: Duration
    ) throws {
        try ready()
        guard let state else { throw failure("not connected") }
        var entries = headers.map { _ in amqp_table_entry_t() }
        var keepAlive: [[UInt8]] = []
        for (index, (name, value)) in headers.enumerated() {
            keepAlive.append(Array(name.utf8))
            keepAlive.append(Array(value.utf8))
            _ = index
        }
        let tag: UInt64 = try keepAlive.withUnsafeBufferPointers { buffers in
            for index in entries.indices {
                entries[index].key = Self.bytes(UnsafeRawBufferPointer(buffers[2 * index]))
                entries[index].value.kind = UInt8(ascii: "S")
                entries[index].value.value.bytes = Self.bytes(UnsafeRawBufferPointer(buffers[2 * index + 1]))
            }
            return try entries.withUnsafeMutableBufferPointer { table in
                var properties = amqp_basic_properties_t()
                properties._flags = pgbridge_amqp_publish_flags | pgbridge_amqp_headers_flag
                properties.content_type = Self.contentType
                properties.delivery_mode = 2
                properties.app_id = Self.appID
                properties.headers = amqp_table_t(num_entries: Int32(table.count), entries: table.baseAddress)
                let status = exchange.withCString { exchangeName in
                    routingKey.withCString { key in
                        body.withUnsafeBytes { bodyBytes in
                            amqp_basic_publish(
                                state, Self.channel, amqp_cstring_bytes(exchangeName), amqp_cstring_bytes(key), 1, 0,
                                &properties, Self.bytes(bodyBytes))
                        }
                    }
                }
                guard status == AMQP_STATUS_OK.rawValue else {
                    abandon()
                    throw failure("publish failed: \(Self.statusText(status))")
                }
                return takeDeliveryTag()
            }
        }
        let deadline = ContinuousClock.now + timeout
        var returned: String?
        while ContinuousClock.now < deadline {
            switch try nextEvent(timeout: .milliseconds(100)) {
            case .ack(let acked, let multiple) where acked == tag || (multiple && acked >= tag):
                if let returned {
                    throw failure(
                        "the message was not routed to any queue (\(returned)): bind a queue for routing key '\(routingKey)'",
                        retriable: false)
                }
                return
            case .nack(let nacked, let multiple) where nacked == tag || (multiple && nacked >= tag):
                throw failure("RabbitMQ refused the message (nack)", retriable: false)
            case .returned(_, let reason):
                returned = reason
            default:
                continue
            }
        }
        throw failure("no confirmation from RabbitMQ within \(timeout)")
    }

    private func checkPeek(_ reply: amqp_rpc_reply_t, _ what: String, channelOpen: inout Bool) throws {
        try checkOnChannel(reply, what, channel: Self.peekChannel, channelOpen: &channelOpen)
    }

    /// Checks the reply of a call on a channel of its own (peeks, consumers): a channel the
    /// broker closed is answered and reported (404: the queue does not exist); anything else
    /// loses the connection.
    func checkOnChannel(_ reply: amqp_rpc_reply_t, _ what: String, channel: amqp_channel_t, channelOpen: inout Bool)
        throws
    {
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        channelOpen = false
        if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, reply.reply.id == pgbridge_amqp_channel_close {
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            var closeOK = amqp_channel_close_ok_t()
            if let state { amqp_send_method(state, channel, pgbridge_amqp_channel_close_ok, &closeOK) }
            throw failure(
                "\(what) failed: \(close.reply_code) \(Self.string(close.reply_text))"
                    + (close.reply_code == 404 ? ": the queue does not exist" : ""), retriable: false)
        }
        abandon()
        throw failure("\(what) failed")
    }

    static func messageID(_ properties: amqp_basic_properties_t) -> String? {
        guard properties._flags & pgbridge_amqp_message_id_flag != 0 else { return nil }
        return string(properties.message_id)
    }

    static func headers(_ properties: amqp_basic_properties_t) -> [(String, String?)] {
        guard properties._flags & pgbridge_amqp_headers_flag != 0, let entries = properties.headers.entries else {
            return []
        }
        var headers: [(String, String?)] = []
        for index in 0..<Int(properties.headers.num_entries) {
            let entry = entries[index]
            let value = entry.value
            let text: String?
            switch value.kind {
            case UInt8(ascii: "S"), UInt8(ascii: "x"): text = string(value.value.bytes)
            case UInt8(ascii: "I"): text = String(value.value.i32)
            case UInt8(ascii: "l"): text = String(value.value.i64)
            case UInt8(ascii: "t"): text = value.value.boolean != 0 ? "true" : "false"
            case UInt8(ascii: "d"): text = String(value.value.f64)
            default: text = nil
            }
            headers.append((string(entry.key), text))
        }
        return headers
    }
}

extension Array where Element == [UInt8] {
    /// Calls `body` with stable pointers to every element's bytes.
    func withUnsafeBufferPointers<T>(_ body: ([UnsafeBufferPointer<UInt8>]) throws -> T) rethrows -> T {
        var pointers: [UnsafeBufferPointer<UInt8>] = []
        var copies: [UnsafeMutableBufferPointer<UInt8>] = []
        defer { copies.forEach { $0.deallocate() } }
        for element in self {
            let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: Swift.max(1, element.count))
            _ = copy.initialize(from: element)
            copies.append(copy)
            pointers.append(UnsafeBufferPointer(start: copy.baseAddress, count: element.count))
        }
        return try body(pointers)
    }
}
