/// Polls `condition` every 50 ms until it holds; fails with `what` after `timeout`.
func waitFor(
    _ what: String = "the condition", timeout: Duration = .seconds(120), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            throw TestFailure("timed out after \(timeout) waiting for \(what)")
        }
        try await Task.sleep(for: .milliseconds(50))
    }
}
