/// Tests that stop or kill a shared disruptive service (the second Redis, the second RabbitMQ
/// node) hold its lock meanwhile, so that one test's outage does not fall into another's.
actor OutageLock {
    static let redis2 = OutageLock()
    static let rabbitMQ2 = OutageLock()

    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    private func acquire() async {
        guard held else {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty {
            held = false
        } else {
            waiters.removeFirst().resume()  // ownership passes on; `held` stays true
        }
    }

    /// Runs `body` while holding every lock of `locks` (taken in the order given).
    static func holding<T>(_ locks: [OutageLock], _ body: () async throws -> T) async throws -> T {
        for lock in locks { await lock.acquire() }
        do {
            let result = try await body()
            for lock in locks.reversed() { await lock.release() }
            return result
        } catch {
            for lock in locks.reversed() { await lock.release() }
            throw error
        }
    }
}
