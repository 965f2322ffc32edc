/// The statements a connection keeps prepared by their text, least recently used first out.
/// Names are never reused, so a statement the server still holds (its eviction skipped by a
/// failed pipeline) never answers for another text.
struct StatementCache: Sendable {
    let capacity: Int
    private var entries: [String: (name: String, used: UInt64)] = [:]
    private var clock: UInt64 = 0
    private var counter: UInt64 = 0

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    var count: Int { entries.count }

    /// The name `sql` is prepared under, marked as just used; nil when it is not prepared.
    mutating func name(for sql: String) -> String? {
        guard let entry = entries[sql] else { return nil }
        clock += 1
        entries[sql] = (entry.name, clock)
        return entry.name
    }

    /// A fresh name for `sql`, and the name of the statement to deallocate to make room.
    mutating func reserve(_ sql: String) -> (name: String, evicted: String?) {
        counter += 1
        var evicted: String?
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.used < $1.value.used }) {
            entries[oldest.key] = nil
            evicted = oldest.value.name
        }
        return ("pgbridge_statement_\(counter)", evicted)
    }

    /// Forgets `sql` (its statement failed: its plan may no longer fit the tables); returns the
    /// name to deallocate.
    mutating func remove(_ sql: String) -> String? {
        entries.removeValue(forKey: sql)?.name
    }

    /// Records that `sql` is now prepared as `name`.
    mutating func insert(_ sql: String, name: String) {
        clock += 1
        entries[sql] = (name, clock)
    }
}
