import BridgeCore
import CRabbitMQ
import Foundation

/// One rabbitmq-c connection with one confirm-mode channel. Not thread-safe: owned by a
/// `RabbitMQClient` and used on its queue only.
public final class AMQPConnection {
    private(set) var state: amqp_connection_state_t?
    private var channelOpen = false
    /// Delivery tag of the next publish on the current channel (confirm mode numbers from 1).
    public private(set) var nextDeliveryTag: UInt64 = 1
    /// Queues and bindings declared on the current connection.
    private var declared: Set<String> = []
    /// The broker's tag for the consumer started by `startConsuming` (empty when none).
    var consumerTag: [UInt8] = []
    let url: ServiceURL
    let config: RabbitMQSinkConfig
    public let description: String
    static let channel: amqp_channel_t = 1

    init(url: ServiceURL, config: RabbitMQSinkConfig) {
        self.url = url
        self.config = config
        self.description = url.description
    }

    deinit { disconnect() }

    /// Closes the connection; a consumer's unacknowledged deliveries go back to the queue.
    public func disconnect() {
        guard let state else { return }
        if channelOpen { amqp_channel_close(state, Self.channel, AMQP_REPLY_SUCCESS) }
        amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        amqp_destroy_connection(state)
        self.state = nil
        channelOpen = false
        declared = []
        consumerTag = []
    }

    /// Drops the connection without the closing handshake (after I/O errors).
    public func abandon() {
        guard let state else { return }
        amqp_destroy_connection(state)
        self.state = nil
        channelOpen = false
        declared = []
        consumerTag = []
    }

    /// Connects, logs in and opens the confirm-mode channel, as needed.
    public func ready() throws {
        if state == nil { try connect() }
        if !channelOpen { try openChannel() }
    }

    private func connect() throws {
        guard let state = amqp_new_connection() else { throw failure("cannot allocate a connection") }
        self.state = state
        // Without these, a broker that stops answering would block the sink forever.
        var handshake = timeval(tv_sec: 15, tv_usec: 0)
        amqp_set_handshake_timeout(state, &handshake)
        var rpc = timeval(tv_sec: 30, tv_usec: 0)
        amqp_set_rpc_timeout(state, &rpc)
        let socket: OpaquePointer?
        if config.tls.enabled || url.scheme == "amqps" {
            socket = amqp_ssl_socket_new(state)
            if let socket {
                amqp_ssl_socket_set_verify_peer(socket, config.tls.skipVerifyServer ? 0 : 1)
                amqp_ssl_socket_set_verify_hostname(socket, config.tls.skipVerifyServer ? 0 : 1)
                if !config.tls.caFile.isEmpty, amqp_ssl_socket_set_cacert(socket, config.tls.caFile) != 0 {
                    abandon()
                    throw failure("cannot read the CA file \(config.tls.caFile)", retriable: false)
                }
                if !config.tls.certFile.isEmpty,
                    amqp_ssl_socket_set_key(socket, config.tls.certFile, config.tls.keyFile) != 0
                {
                    abandon()
                    throw failure("cannot read the client certificate or key", retriable: false)
                }
            }
        } else {
            socket = amqp_tcp_socket_new(state)
        }
        guard let socket else {
            abandon()
            throw failure("cannot create a socket")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        let port = Int32(url.port ?? (url.scheme == "amqps" ? 5671 : 5672))
        let status = amqp_socket_open_noblock(socket, url.host, port, &timeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            abandon()
            throw failure("cannot connect: \(Self.statusText(status)). Is RabbitMQ running and reachable?")
        }
        let heartbeat = Int32(config.heartbeat.components.seconds)
        let reply = pgbridge_amqp_login_plain(
            state, url.path ?? "/", 131_072, heartbeat, url.user ?? "guest", url.password ?? "guest")
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            let text = replyText(reply)
            // Refused credentials or vhost (403) will not fix themselves; a broker that is still
            // starting or a dropped socket will.
            let refused = reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && text.hasPrefix("403")
            abandon()
            throw failure(
                "login failed: \(text)\(refused ? ": check the user, password and vhost in the URL" : "")",
                retriable: !refused)
        }
    }

    private func openChannel() throws {
        guard let state else { throw failure("not connected") }
        amqp_channel_open(state, Self.channel)
        try check(amqp_get_rpc_reply(state), "channel.open")
        amqp_confirm_select(state, Self.channel)
        try check(amqp_get_rpc_reply(state), "confirm.select")
        channelOpen = true
        nextDeliveryTag = 1
        declared = []
    }

    /// Declares a durable queue (and binds it to `exchange`) once per connection.
    public func declare(queue: String, exchange: String, bindingKey: String) throws {
        let name = "\(queue)\u{0}\(exchange)\u{0}\(bindingKey)"
        guard !declared.contains(name), let state else { return }
        _ = queue.withCString { queueName in
            amqp_queue_declare(state, Self.channel, amqp_cstring_bytes(queueName), 0, 1, 0, 0, amqp_empty_table)
        }
        try check(amqp_get_rpc_reply(state), "declaring queue \(queue)")
        if !exchange.isEmpty {
            queue.withCString { queueName in
                exchange.withCString { exchangeName in
                    bindingKey.withCString { key in
                        _ = amqp_queue_bind(
                            state, Self.channel, amqp_cstring_bytes(queueName), amqp_cstring_bytes(exchangeName),
                            amqp_cstring_bytes(key), amqp_empty_table)
                    }
                }
            }
            try check(amqp_get_rpc_reply(state), "binding queue \(queue) to exchange \(exchange)")
        }
        declared.insert(name)
    }

    /// Publishes one persistent message; returns its delivery tag.
    public func publish(
        exchange: UnsafeRawBufferPointer, routingKey: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer,
        messageID: UnsafeRawBufferPointer, type: UnsafeRawBufferPointer, mandatory: Bool, persistent: Bool
    ) throws -> UInt64 {
        guard let state else { throw failure("not connected") }
        var properties = amqp_basic_properties_t()
        properties._flags = pgbridge_amqp_publish_flags
        properties.content_type = Self.contentType
        properties.delivery_mode = persistent ? 2 : 1
        properties.message_id = Self.bytes(messageID)
        properties.type = Self.bytes(type)
        properties.app_id = Self.appID
        let status = amqp_basic_publish(
            state, Self.channel, Self.bytes(exchange), Self.bytes(routingKey), mandatory ? 1 : 0, 0,
            &properties, Self.bytes(body))
        guard status == AMQP_STATUS_OK.rawValue else {
            abandon()
            throw failure("publish failed: \(Self.statusText(status))")
        }
        return takeDeliveryTag()
    }

    /// The delivery tag of the message just published (confirm mode numbers them from 1).
    func takeDeliveryTag() -> UInt64 {
        defer { nextDeliveryTag += 1 }
        return nextDeliveryTag
    }

    public enum Event {
        case ack(tag: UInt64, multiple: Bool)
        case nack(tag: UInt64, multiple: Bool)
        /// An unroutable message came back (mandatory): its message id and the broker's reason.
        case returned(messageID: [UInt8], reason: String)
    }

    /// The next confirm-related event, waiting at most `timeout`; nil on timeout.
    public func nextEvent(timeout: Duration) throws -> Event? {
        guard let state else { throw failure("not connected") }
        while true {
            var frame = amqp_frame_t()
            var time = timeval(
                tv_sec: Int(timeout.components.seconds),
                tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
            let status = amqp_simple_wait_frame_noblock(state, &frame, &time)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
            guard status == AMQP_STATUS_OK.rawValue else {
                abandon()
                throw failure("connection lost: \(Self.statusText(status))")
            }
            guard frame.frame_type == AMQP_FRAME_METHOD else { continue }
            let method = frame.payload.method
            switch method.id {
            case pgbridge_amqp_basic_ack:
                let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                return .ack(tag: ack.delivery_tag, multiple: ack.multiple != 0)
            case pgbridge_amqp_basic_nack:
                let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                return .nack(tag: nack.delivery_tag, multiple: nack.multiple != 0)
            case pgbridge_amqp_basic_return:
                let returned = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
                let reason = "\(returned.reply_code) \(Self.string(returned.reply_text))"
                var message = try readMessage(on: frame.channel, "a returned message")
                defer { amqp_destroy_message(&message) }
                let id = message.properties.message_id
                let bytes = id.bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: id.len)) } ?? []
                return .returned(messageID: bytes, reason: reason)
            case pgbridge_amqp_channel_close:
                let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                var closeOK = amqp_channel_close_ok_t()
                amqp_send_method(state, Self.channel, pgbridge_amqp_channel_close_ok, &closeOK)
                channelOpen = false
                throw failure(
                    "RabbitMQ closed the channel: \(close.reply_code) \(Self.string(close.reply_text))"
                        + (close.reply_code == 404 ? ": declare the exchange or fix `exchange`" : ""))
            case pgbridge_amqp_connection_close:
                let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                // The reply text lives in the connection's frame pool: read it before the connection goes.
                let message = "RabbitMQ closed the connection: \(close.reply_code) \(Self.string(close.reply_text))"
                var closeOK = amqp_connection_close_ok_t()
                amqp_send_method(state, 0, pgbridge_amqp_connection_close_ok, &closeOK)
                abandon()
                throw failure(message)
            default:
                continue
            }
        }
    }

    /// Reads the content frames of the message whose method frame was just read; the caller
    /// destroys it. A failure loses the connection.
    func readMessage(on channel: amqp_channel_t, _ what: String) throws -> amqp_message_t {
        guard let state else { throw failure("not connected") }
        var message = amqp_message_t()
        guard amqp_read_message(state, channel, &message, 0).reply_type == AMQP_RESPONSE_NORMAL else {
            abandon()
            throw failure("connection lost while reading \(what)")
        }
        return message
    }

    /// Lets rabbitmq-c answer heartbeats while no delivery runs (the broker drops silent clients).
    func serviceHeartbeats() {
        guard state != nil, channelOpen else { return }
        do {
            while try nextEvent(timeout: .zero) != nil {}
        } catch {
            abandon()
        }
        releaseBuffers()
    }

    public func releaseBuffers() {
        if let state { amqp_maybe_release_buffers(state) }
    }

    // MARK: - Helpers

    func check(_ reply: amqp_rpc_reply_t, _ what: String) throws {
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        let text = replyText(reply)
        if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION {
            channelOpen = false
            if reply.reply.id == pgbridge_amqp_connection_close { abandon() } else { disconnect() }
        } else {
            abandon()
        }
        throw failure("\(what) failed: \(text)")
    }

    private func replyText(_ reply: amqp_rpc_reply_t) -> String {
        switch reply.reply_type {
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == pgbridge_amqp_connection_close {
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return "\(close.reply_code) \(Self.string(close.reply_text))"
            }
            if reply.reply.id == pgbridge_amqp_channel_close {
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return "\(close.reply_code) \(Self.string(close.reply_text))"
            }
            return "server exception"
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return Self.statusText(reply.library_error)
        default:
            return "no reply"
        }
    }

    public func failure(_ message: String, retriable: Bool = true) -> SinkError {
        SinkError(sink: description, message: message, retriable: retriable)
    }

    static func statusText(_ status: Int32) -> String {
        amqp_error_string2(status).map { String(cString: $0) } ?? "error \(status)"
    }

    static func string(_ bytes: amqp_bytes_t) -> String {
        guard let pointer = bytes.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: bytes.len), as: UTF8.self)
    }

    static func bytes(_ buffer: UnsafeRawBufferPointer) -> amqp_bytes_t {
        amqp_bytes_t(len: buffer.count, bytes: UnsafeMutableRawPointer(mutating: buffer.baseAddress))
    }

    nonisolated(unsafe) private static let contentTypeStorage: UnsafeMutableBufferPointer<UInt8> = {
        let text = Array("application/json".utf8)
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: text.count)
        _ = buffer.initialize(from: text)
        return buffer
    }()
    nonisolated(unsafe) private static let appIDStorage: UnsafeMutableBufferPointer<UInt8> = {
        let text = Array("pgbridge".utf8)
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: text.count)
        _ = buffer.initialize(from: text)
        return buffer
    }()
    static var contentType: amqp_bytes_t {
        amqp_bytes_t(len: contentTypeStorage.count, bytes: UnsafeMutableRawPointer(contentTypeStorage.baseAddress))
    }
    static var appID: amqp_bytes_t {
        amqp_bytes_t(len: appIDStorage.count, bytes: UnsafeMutableRawPointer(appIDStorage.baseAddress))
    }
}
