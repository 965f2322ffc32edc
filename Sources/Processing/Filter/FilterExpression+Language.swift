import BridgeCore

extension FilterExpression: EventPredicate {
    /// The `filter:` language the configuration compiles expressions with.
    public static let language = FilterLanguage { text in try FilterExpression(text) }
}
