import Foundation

/// Runs blocking libpq work on a dedicated thread so the cooperative pool never waits on I/O.
enum Blocking {
    static func run<T: Sendable>(_ name: String = "pgbridge-blocking", _ body: @escaping @Sendable () throws -> T)
        async throws -> T
    {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do {
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = name
            thread.start()
        }
    }
}
