import ArgumentParser
import BridgeCore
import PostgresClient
import PostgresSource

/// The documented exit codes (docs/cli.md).
enum ExitCodes {
    static let runtime: Int32 = 1
    static let config: Int32 = 2
    static let prerequisite: Int32 = 3

    /// Prints the error on stderr and maps it to an exit code.
    static func fail(_ error: any Error) -> ExitCode {
        Terminal.error("pgbridge: \(error)")
        return ExitCode(code(for: error))
    }

    static func code(for error: any Error) -> Int32 {
        if error is ConfigError { return config }
        if let error = error as? PostgresError {
            switch error.code {
            case .prerequisite, .slotBusy, .slotInvalidated, .slotMissing: return prerequisite
            default: return runtime
            }
        }
        return runtime
    }
}

enum Terminal {
    static func error(_ line: String) {
        var standardError = StandardError()
        print(line, to: &standardError)
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleWriter.writeStandardError(string)
    }
}
