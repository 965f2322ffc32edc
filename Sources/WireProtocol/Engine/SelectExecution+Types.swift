/// The names and types of result columns, known before any row is read (RowDescription).
extension SelectExecution {
    static func defaultName(_ expression: SQLExpression) -> String {
        switch expression {
        case .column(let name): return name
        case .function(let name, _, _, _): return SQLEvaluator.bareName(name)
        case .cast(let inner, let type):
            let name = defaultName(inner)
            return name == "?column?" ? "\(type)" : name
        default: return "?column?"
        }
    }

    static func staticType(_ expression: SQLExpression, _ columns: [ForeignColumn]) -> SQLType {
        switch expression {
        case .column(let name): return columns.first { $0.name == name }?.type ?? .text
        case .constant(let value):
            if case .int(let number) = value, Int32(exactly: number) != nil { return .int4 }
            return value.isNull ? .text : value.type
        case .untypedString, .parameter: return .text
        case .cast(_, let type): return type
        case .not, .isNull, .quantified, .inList: return .bool
        case .negate(let inner): return staticType(inner, columns)
        case .binary(let op, let a, let b):
            switch op {
            case "->", "#>": return .jsonb
            case "->>", "#>>", "||": return .text
            case "+", "-", "*", "/", "%":
                let types = [staticType(a, columns), staticType(b, columns)]
                return types.contains { $0 == .numeric || $0 == .float8 } ? .numeric : .int8
            default: return .bool
            }
        case .array(let list): return .array(list.first.map { staticType($0, columns) } ?? .text)
        case .function(let name, let arguments, _, _):
            switch SQLEvaluator.bareName(name) {
            case "count", "pg_relation_size": return .int8
            case "sum":
                let type = arguments.first.map { staticType($0, columns) } ?? .int8
                return type == .numeric || type == .float8 ? .numeric : .int8
            case "avg": return .numeric
            case "length", "char_length": return .int4
            case "starts_with": return .bool
            case "min", "max", "coalesce", "abs", "nullif", "greatest", "least":
                return arguments.first.map { staticType($0, columns) } ?? .text
            case "jsonb_extract_path": return .jsonb
            default: return .text
            }
        case .star: return .text
        }
    }
}
