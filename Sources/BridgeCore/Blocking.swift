import Dispatch

/// One-off blocking work (an administrative libpq session, a setup step) that is not tied to a
/// confined handle: it runs on one shared concurrent queue, whose threads the system reuses and
/// adds to when work blocks, never on Swift's cooperative pool and never on a thread of its own.
public enum Blocking {
    private static let queue = DispatchQueue(label: "pgbridge.blocking", attributes: .concurrent)

    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await queue.perform(body)
    }
}
