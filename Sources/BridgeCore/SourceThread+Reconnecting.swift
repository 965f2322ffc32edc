import Logging

extension SourceThread {
    /// The loop of a source that reads a broker over one connection at a time: `connection`
    /// connects and reads until a stop (it returns) or an error (it throws). After an error the
    /// loop logs it with what happens meanwhile and connects again after a pause that doubles
    /// from 0.5 s to 30 s, and starts over at 0.5 s once a connection handed out a batch
    /// (`connection` sets its flag): an error that comes back right after connecting (refused
    /// rights, a missing queue) is not retried in a tight loop. Ends `next()` once done: after
    /// a stop, what was handed out is delivered and confirmed first.
    public func runReconnecting(
        _ what: String, meanwhile: String, logger: Logger, _ connection: (_ handedOut: inout Bool) throws -> Void
    ) {
        var delay = Duration.milliseconds(500)
        defer { queue.finish() }
        while !stopRequested {
            var handedOut = false
            do {
                try connection(&handedOut)
                return
            } catch {
                if handedOut { delay = .milliseconds(500) }
                logger.error("\(what): \(error); connecting again in \(delay) (\(meanwhile))")
                guard pause(delay) else { break }
                delay = min(delay * 2, .seconds(30))
            }
        }
    }
}
