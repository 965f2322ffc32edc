extension Duration {
    /// The whole duration in nanoseconds (for APIs that take an integer count).
    public var nanosecondCount: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
