/// A sink could not store events; the pipe retries and does not confirm them.
public struct SinkError: Error, Sendable, CustomStringConvertible {
    public var sink: String
    public var message: String
    public var isRetriable: Bool

    public init(sink: String, message: String, retriable: Bool = true) {
        self.sink = sink
        self.message = message
        self.isRetriable = retriable
    }

    public var description: String { "\(sink): \(message)" }
}
