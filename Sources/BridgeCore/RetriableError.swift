/// Errors that say whether trying again later may succeed (connection problems, restarts).
public protocol RetriableError: Error {
    var isRetriable: Bool { get }
}

extension SinkError: RetriableError {}
