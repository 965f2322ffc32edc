import Logging

enum LoggingSetup {
    /// Logs go to stderr so that `path: "-"` sinks own stdout.
    static func bootstrap(level: String) -> Logger {
        let parsed = Logger.Level(rawValue: level.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
        return Logger(label: "pgbridge")
    }
}
