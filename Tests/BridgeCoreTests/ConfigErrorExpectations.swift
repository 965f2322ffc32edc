import BridgeRuntime
import Testing

@testable import BridgeCore

/// Each `(yaml, expected)` case fails to parse (after `base`) with a ConfigError whose text
/// contains `expected`.
func expectConfigErrors(_ cases: [(String, String)], base: String) {
    for (yaml, expected) in cases {
        do {
            _ = try BridgeConfig.parse(yaml: base + yaml, registry: .standard)
            Issue.record("\(yaml): parsed, expected an error containing \(expected)")
        } catch let error as ConfigError {
            #expect("\(error)".contains(expected), "\(yaml): \(error)")
        } catch {
            Issue.record("\(yaml): not a ConfigError: \(error)")
        }
    }
}
