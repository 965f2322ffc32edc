import BridgeCore
import CRabbitMQ
import Foundation

/// A message delivered to a consumer; acknowledge or reject it by its `deliveryTag`.
public struct ConsumedMessage: Sendable {
    public var deliveryTag: UInt64
    public var message: AMQPMessage
}

/// Consuming with manual acknowledgements, on a channel of its own. A consuming connection is
/// used by an `AMQPConsumer` only: its deliveries must be read by `nextDelivery`, never by the
/// publisher's event loop.
extension AMQPConnection {
    static let consumeChannel: amqp_channel_t = 3

    /// A connection for one consuming thread (a message source), which owns it: it is used on
    /// that thread only. Connects on `startConsuming`.
    public static func consuming(config: RabbitMQSinkConfig) throws -> AMQPConnection {
        AMQPConnection(url: try ServiceURL.required(config.url, for: "rabbitmq"), config: config)
    }

    /// Starts consuming `queue`: at most `prefetch` messages are delivered and not yet
    /// acknowledged at a time (basic.qos), and each stays with this consumer until it is
    /// acknowledged or rejected, or the connection ends (then RabbitMQ delivers it again).
    public func startConsuming(queue: String, prefetch: UInt16) throws {
        try ready()
        guard let state else { throw failure("not connected") }
        var open = true
        amqp_channel_open(state, Self.consumeChannel)
        try checkOnChannel(amqp_get_rpc_reply(state), "channel.open", channel: Self.consumeChannel, channelOpen: &open)
        amqp_basic_qos(state, Self.consumeChannel, 0, prefetch, 0)
        try checkOnChannel(amqp_get_rpc_reply(state), "basic.qos", channel: Self.consumeChannel, channelOpen: &open)
        let ok = queue.withCString { name in
            amqp_basic_consume(
                state, Self.consumeChannel, amqp_cstring_bytes(name), amqp_empty_bytes, 0, 0, 0, amqp_empty_table)
        }
        try checkOnChannel(
            amqp_get_rpc_reply(state), "basic.consume from queue \(queue)", channel: Self.consumeChannel,
            channelOpen: &open)
        // The tag lives in the connection's frame pool: copied before the next read.
        consumerTag =
            ok.flatMap { ok in
                ok.pointee.consumer_tag.bytes.map {
                    Array(UnsafeRawBufferPointer(start: $0, count: ok.pointee.consumer_tag.len))
                }
            } ?? []
    }

    /// Stops the consumer (`basic.cancel`): nothing more is delivered; what was delivered stays
    /// this connection's until acknowledged or rejected (deliveries that crossed the cancel are
    /// still read by `nextDelivery`).
    public func cancelConsuming() throws {
        guard let state, !consumerTag.isEmpty else { return }
        let ok = consumerTag.withUnsafeBytes { tag in amqp_basic_cancel(state, Self.consumeChannel, Self.bytes(tag)) }
        consumerTag = []
        if ok == nil {
            var open = true
            try checkOnChannel(
                amqp_get_rpc_reply(state), "basic.cancel", channel: Self.consumeChannel, channelOpen: &open)
        }
    }

    /// The messages of `queue` ready for delivery (a passive `queue.declare` on the publishing
    /// channel; deliveries arriving meanwhile wait for `nextDelivery`).
    public func readyMessages(queue: String) throws -> Int64 {
        // Never a new connection: one without the consumer would measure nothing useful.
        guard state != nil else { throw failure("not connected") }
        try ready()
        guard let state else { throw failure("not connected") }
        let reply = queue.withCString { name in
            amqp_queue_declare(state, Self.channel, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table)
        }
        guard let reply else {
            try check(amqp_get_rpc_reply(state), "queue.declare (passive) of \(queue)")
            throw failure("queue.declare (passive) of \(queue) failed")
        }
        return Int64(reply.pointee.message_count)
    }

    /// The next delivery, waiting at most `timeout`; nil when none came.
    public func nextDelivery(timeout: Duration) throws -> ConsumedMessage? {
        guard let state else { throw failure("not connected") }
        amqp_maybe_release_buffers(state)
        var envelope = amqp_envelope_t()
        var time = timeval(
            tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        let reply = amqp_consume_message(state, &envelope, &time, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_envelope(&envelope) }
            let body = envelope.message.body
            return ConsumedMessage(
                deliveryTag: envelope.delivery_tag,
                message: AMQPMessage(
                    exchange: Self.string(envelope.exchange), routingKey: Self.string(envelope.routing_key),
                    redelivered: envelope.redelivered != 0, headers: Self.headers(envelope.message.properties),
                    messageID: Self.messageID(envelope.message.properties),
                    body: body.bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: body.len)) } ?? []))
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_TIMEOUT.rawValue:
            return nil
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            // A frame that is not a delivery: the broker closing the channel or the connection.
            try handleNonDeliveryFrame()
            return nil
        default:
            abandon()
            throw failure("connection lost while consuming: \(Self.statusText(reply.library_error))")
        }
    }

    public func acknowledge(deliveryTag: UInt64, multiple: Bool) throws {
        guard let state else { throw failure("not connected: the delivery is sent again") }
        let status = amqp_basic_ack(state, Self.consumeChannel, deliveryTag, multiple ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else {
            abandon()
            throw failure("basic.ack failed: \(Self.statusText(status)); the delivery is sent again")
        }
    }

    /// Rejects a delivery (and every earlier one with `multiple`): back to the queue with
    /// `requeue`, else dropped (or dead-lettered by the queue's own policy).
    public func reject(deliveryTag: UInt64, multiple: Bool = false, requeue: Bool) throws {
        guard let state else { throw failure("not connected: the delivery is sent again") }
        let status = amqp_basic_nack(state, Self.consumeChannel, deliveryTag, multiple ? 1 : 0, requeue ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else {
            abandon()
            throw failure("basic.nack failed: \(Self.statusText(status))")
        }
    }

    private func handleNonDeliveryFrame() throws {
        guard let state else { return }
        var frame = amqp_frame_t()
        var now = timeval(tv_sec: 0, tv_usec: 0)
        guard amqp_simple_wait_frame_noblock(state, &frame, &now) == AMQP_STATUS_OK.rawValue,
            frame.frame_type == AMQP_FRAME_METHOD
        else { return }
        let method = frame.payload.method
        // The reply text lives in the connection's frame pool: read it before the connection goes.
        if method.id == pgbridge_amqp_channel_close {
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let message =
                "RabbitMQ closed the consumer's channel: \(close.reply_code) \(Self.string(close.reply_text))"
                + (close.reply_code == 404 ? ": the queue does not exist" : "")
            abandon()
            throw failure(message)
        }
        if method.id == pgbridge_amqp_connection_close {
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let message = "RabbitMQ closed the connection: \(close.reply_code) \(Self.string(close.reply_text))"
            abandon()
            throw failure(message)
        }
        if method.id == pgbridge_amqp_basic_cancel {
            abandon()
            throw failure(
                "RabbitMQ cancelled the consumer (the queue was deleted or its node went away): consuming starts again "
                    + "when the queue is back")
        }
    }
}
