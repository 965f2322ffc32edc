import Foundation
import Testing

/// Loads captured pgoutput messages (one hex line per message; `#` comments).
enum Fixtures {
    static func messages(_ name: String) throws -> [[UInt8]] {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "hex", subdirectory: "Fixtures"))
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
            return hexBytes(trimmed)
        }
    }

    static func hexBytes(_ hex: some StringProtocol) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.utf8.count / 2)
        var high: UInt8?
        for c in hex.utf8 {
            let v: UInt8 = c <= 57 ? c - 48 : (c | 0x20) - 87
            if let h = high {
                bytes.append(h << 4 | v)
                high = nil
            } else {
                high = v
            }
        }
        return bytes
    }

    static let all = [
        "basic_crud", "replica_identity_full", "replica_identity_index", "types", "types_binary", "toast_unchanged",
        "alter_table", "logical_message", "streaming", "two_phase", "origin", "proto_v1",
    ]
}
