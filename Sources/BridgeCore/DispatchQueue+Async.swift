import Dispatch

extension DispatchQueue {
    /// Runs blocking work (C libraries, file I/O) on this queue and awaits its result, so that
    /// it never holds a thread of Swift's cooperative pool.
    public func perform<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            async {
                do {
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
