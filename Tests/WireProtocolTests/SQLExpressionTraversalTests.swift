import Testing

@testable import WireProtocol

/// The one traversal every walker uses, and the two walkers that had drifted from the others.
@Suite("SQL expression traversal")
struct SQLExpressionTraversalTests {
    static let leaf = SQLExpression.column("a")
    static let other = SQLExpression.constant(.int(1))

    /// One expression of every case, with its direct children.
    static let cases: [(SQLExpression, [SQLExpression])] = [
        (.column("a"), []),
        (.constant(.int(1)), []),
        (.untypedString("x"), []),
        (.parameter(1), []),
        (.star, []),
        (.cast(leaf, .text), [leaf]),
        (.not(leaf), [leaf]),
        (.negate(leaf), [leaf]),
        (.isNull(leaf, negated: true), [leaf]),
        (.binary("=", leaf, other), [leaf, other]),
        (.quantified("=", leaf, all: false, other), [leaf, other]),
        (.inList(leaf, [other, other], negated: false), [leaf, other, other]),
        (.array([leaf, other]), [leaf, other]),
        (.function("lower", [leaf], star: false, distinct: false), [leaf]),
    ]

    @Test func everyCaseHasItsChildrenAndKeepsItsShape() {
        // A new case must be added to `cases`: this switch has no default.
        var covered: Set<String> = []
        for (expression, _) in Self.cases {
            switch expression {
            case .column: covered.insert("column")
            case .constant: covered.insert("constant")
            case .untypedString: covered.insert("untypedString")
            case .parameter: covered.insert("parameter")
            case .star: covered.insert("star")
            case .cast: covered.insert("cast")
            case .not: covered.insert("not")
            case .negate: covered.insert("negate")
            case .isNull: covered.insert("isNull")
            case .binary: covered.insert("binary")
            case .quantified: covered.insert("quantified")
            case .inList: covered.insert("inList")
            case .array: covered.insert("array")
            case .function: covered.insert("function")
            }
        }
        #expect(covered.count == 14, "every case of SQLExpression is in `cases`")
        for (expression, children) in Self.cases {
            #expect(expression.children == children, "\(expression)")
            #expect(expression.mapChildren { $0 } == expression, "\(expression)")
            // A transform reaches every child, and only the children.
            let marked = expression.mapChildren { _ in SQLExpression.parameter(9) }
            #expect(marked.children == children.map { _ in .parameter(9) }, "\(expression)")
        }
    }

    @Test func visitSkipsChildrenWhenAsked() {
        let expression = SQLExpression.binary(
            "and", .function("count", [.column("inner")], star: false, distinct: false), .column("outer"))
        var seen: [SQLExpression] = []
        expression.visit { node in
            seen.append(node)
            if case .function = node { return false }
            return true
        }
        #expect(!seen.contains(.column("inner")) && seen.contains(.column("outer")))
        #expect(seen.count == 3)
    }

    /// Parameters in INSERT … RETURNING count (they were ignored: the statement then asked
    /// for fewer parameters than it used).
    @Test func parametersOfReturningAreCounted() throws {
        let statement = try #require(
            try SQLParser.parse(#"INSERT INTO t.t (key) VALUES ($1) RETURNING "offset" + $2"#).first)
        #expect(statement.parameterCount == 2)
        let select = try #require(try SQLParser.parse("SELECT key FROM t.t WHERE key IN ($1, $3) LIMIT $2").first)
        #expect(select.parameterCount == 3)
    }

    /// Aggregates inside IN lists and ANY comparisons are replaced by their results (the
    /// substitution skipped those cases, so the query failed).
    @Test func aggregatesInsideInListsAndAnyAreComputed() async throws {
        #expect(try await SQLSubsetLimitTests.rows("SELECT count(*) IN (2, 3) FROM t.t") == [[.bool(true)]])
        #expect(
            try await SQLSubsetLimitTests.rows(#"SELECT max("offset") = ANY (ARRAY[2, 5]) FROM t.t"#) == [[.bool(true)]]
        )
        #expect(try await SQLSubsetLimitTests.rows("SELECT count(*) NOT IN (2) FROM t.t") == [[.bool(false)]])
    }
}
