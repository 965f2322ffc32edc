/// Comparisons of secrets whose running time does not reveal where they differ.
public enum ConstantTime {
    /// True when both hold the same bytes; the time depends only on the length of `expected`.
    public static func equals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = given.count ^ expected.count
        for index in expected.indices {
            difference |= Int(expected[index] ^ (index < given.count ? given[index] : 0))
        }
        return difference == 0
    }
}
