import NIOCore

/// Closes a connection whose client stopped reading: when written data has waited longer than
/// `timeout` without any of it reaching the socket, the channel is closed, so a response that is
/// being streamed fails its next write and gives back what it holds (a REST-proxy session, a
/// cursor). Without it, a client that stops reading keeps a pooled PostgreSQL session forever.
final class WriteTimeoutHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private let timeout: TimeAmount
    private var pendingWrites = 0
    private var lastProgress = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let done = promise ?? context.eventLoop.makePromise()
        if pendingWrites == 0 { lastProgress = .now() }
        pendingWrites += 1
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        done.futureResult.whenComplete { _ in
            handler.value.pendingWrites -= 1
            handler.value.lastProgress = .now()
        }
        scheduleCheck(context)
        context.write(data, promise: done)
    }

    private func scheduleCheck(_ context: ChannelHandlerContext) {
        guard check == nil else { return }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleTask(deadline: lastProgress + timeout) {
            let (handler, context) = bound.value
            handler.check = nil
            guard handler.pendingWrites > 0 else { return }
            if NIODeadline.now() - handler.lastProgress >= handler.timeout {
                context.close(promise: nil)
            } else {
                handler.scheduleCheck(context)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
    }
}
