import Dispatch

/// A resource (a C library's connection and its buffers) confined to one serial queue: every
/// use runs there, never on Swift's cooperative pool, and the users sharing it are counted so
/// that the last one to leave closes it. The one implementation of the clients' handles.
public final class Confined<Resource>: @unchecked Sendable {
    // @unchecked Sendable: `resource` and `users` are only touched on `queue`.
    private let resource: Resource
    /// The queue the resource lives on (timers that service it run here too).
    public let queue: DispatchQueue
    private var users = 0

    public init(_ resource: Resource, label: String) {
        self.resource = resource
        queue = DispatchQueue(label: label)
    }

    /// Runs `body` with the resource on its queue and awaits the result.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Resource) throws -> T) async throws -> T {
        try await queue.perform { [self] in try body(resource) }
    }

    /// Runs `body` with the resource on its queue without waiting for it.
    public func enqueue(_ body: @escaping @Sendable (Resource) -> Void) {
        queue.async { [self] in body(resource) }
    }

    /// Adds a user once `prepare` (connecting on first use) succeeded. Counted on the queue,
    /// so that an open and a close of two users never interleave.
    public func retain(_ prepare: @escaping @Sendable (Resource) throws -> Void) async throws {
        try await queue.perform { [self] in
            try prepare(resource)
            users += 1
        }
    }

    /// Removes a user; the last one runs `shutdown` on the queue.
    public func release(_ shutdown: @escaping @Sendable (Resource) -> Void) async {
        try? await queue.perform { [self] in
            users -= 1
            if users <= 0 {
                users = 0
                shutdown(resource)
            }
        }
    }
}
