/// One item of `order=`: `field[.asc|.desc][.nullsfirst|.nullslast]`.
struct RestOrder: Sendable, Equatable {
    var field: RestField
    var descending = false
    var nulls: String?

    static func list(_ text: Substring) throws -> [RestOrder] {
        try RestLists.split(text).map { try item($0.trimmingSpaces) }
    }

    static func item(_ text: Substring) throws -> RestOrder {
        var scanner = RestScanner(text)
        var order = RestOrder(field: try scanner.field())
        while scanner.skip(".") {
            let word = try scanner.name(stoppingAt: ["."], what: "order modifier")
            switch word {
            case "asc": order.descending = false
            case "desc": order.descending = true
            case "nullsfirst": order.nulls = "NULLS FIRST"
            case "nullslast": order.nulls = "NULLS LAST"
            default:
                throw RestError.parse(
                    "order takes column[.asc|.desc][.nullsfirst|.nullslast], got '\(text.prefix(60))'")
            }
        }
        guard scanner.atEnd else { throw RestError.parse("unexpected '\(scanner.rest.prefix(30))' in order") }
        return order
    }

    func sql(_ parameters: inout [String?], qualifier: String?) -> String {
        field.sql(&parameters, qualifier: qualifier) + (descending ? " DESC" : " ASC") + (nulls.map { " \($0)" } ?? "")
    }
}
