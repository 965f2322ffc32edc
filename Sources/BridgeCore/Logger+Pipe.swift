import Logging

extension Logger {
    /// This logger with the pipe's name in every line's metadata (`pipe=<name>`).
    public func forPipe(_ name: String) -> Logger {
        var logger = self
        logger[metadataKey: "pipe"] = "\(name)"
        return logger
    }
}
