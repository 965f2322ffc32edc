import BridgeCore
import Foundation

/// Turns native events into other formats, reading them through `EventFields`.
struct FormatEncoder {
    let format: EventFormat
    let pipe: String
    let version: String
    /// Processing time of the current batch (Debezium's top-level `ts_ms`).
    var nowMillis: Int64 = 0

    init(format: EventFormat, pipe: String, version: String) {
        self.format = format
        self.pipe = pipe
        self.version = version
    }

    func encode(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        switch format {
        case .native: out.append(contentsOf: bytes[fields.event])
        case .debezium: debezium(fields, bytes, into: &out)
        case .cloudevents: cloudEvent(fields, bytes, into: &out)
        }
    }

    // MARK: - Debezium

    /// The Debezium PostgreSQL connector's value (with `schemas.enable=false`): `before`,
    /// `after`, `source`, `op` (c/u/d/r/t/m), `ts_ms`. Unchanged TOAST columns appear in
    /// `after` as `__debezium_unavailable_value`, as Debezium writes them.
    func debezium(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        let scanner = JSONScanner(bytes)
        let op = fields.operation(in: bytes)
        let code: StaticString =
            switch op {
            case .insert: "c"
            case .update: "u"
            case .delete: "d"
            case .read: "r"
            case .truncate: "t"
            case .message, .chunkDropped, nil: "m"
            }
        JSONBytes.appendRaw("{\"before\":", into: &out)
        appendRow(fields.before, scanner, into: &out)
        JSONBytes.appendRaw(",\"after\":", into: &out)
        if let after = fields.after, !scanner.isNull(after), op != .message {
            let toast = scanner.member(Array("unchanged_toast".utf8), of: fields.event)
            if let toast, bytes[toast.lowerBound] == UInt8(ascii: "[") {
                out.append(contentsOf: bytes[after.lowerBound..<(after.upperBound - 1)])
                var any = after.count > 2
                var index = toast.lowerBound + 1
                while index < toast.upperBound - 1 {
                    index = scanner.skipWhitespace(index)
                    guard bytes[index] == UInt8(ascii: "\"") else { break }
                    let end = scanner.stringEnd(index)
                    if any { out.append(UInt8(ascii: ",")) }
                    any = true
                    out.append(contentsOf: bytes[index..<end])
                    JSONBytes.appendRaw(":\"__debezium_unavailable_value\"", into: &out)
                    index = scanner.skipWhitespace(end)
                    if index < toast.upperBound, bytes[index] == UInt8(ascii: ",") { index += 1 }
                }
                out.append(UInt8(ascii: "}"))
            } else {
                out.append(contentsOf: bytes[after])
            }
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        JSONBytes.appendRaw(",\"source\":{\"version\":", into: &out)
        JSONBytes.appendString(version, into: &out)
        JSONBytes.appendRaw(",\"connector\":\"postgresql\",\"name\":", into: &out)
        JSONBytes.appendString(pipe, into: &out)
        JSONBytes.appendRaw(",\"ts_ms\":", into: &out)
        JSONBytes.appendInt(fields.commitTime.flatMap { Self.epochMillis(bytes[$0]) } ?? nowMillis, into: &out)
        JSONBytes.appendRaw(",\"snapshot\":", into: &out)
        JSONBytes.appendRaw(op == .read ? "\"true\"" : "\"false\"", into: &out)
        JSONBytes.appendRaw(",\"db\":", into: &out)
        appendString(fields.db, bytes, into: &out)
        let lsn = fields.lsn.flatMap { LSN(String(decoding: bytes[$0], as: UTF8.self)) }
        let commitLSN = fields.commitLSN.flatMap { LSN(String(decoding: bytes[$0], as: UTF8.self)) }
        JSONBytes.appendRaw(",\"sequence\":\"[", into: &out)
        if let commitLSN {
            JSONBytes.appendRaw("\\\"", into: &out)
            JSONBytes.appendUInt(commitLSN.value, into: &out)
            JSONBytes.appendRaw("\\\"", into: &out)
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        JSONBytes.appendRaw(",\\\"", into: &out)
        JSONBytes.appendUInt(lsn?.value ?? 0, into: &out)
        JSONBytes.appendRaw("\\\"]\",\"schema\":", into: &out)
        appendString(fields.schema, bytes, into: &out)
        JSONBytes.appendRaw(",\"table\":", into: &out)
        appendString(fields.table, bytes, into: &out)
        JSONBytes.appendRaw(",\"txId\":", into: &out)
        if let xid = fields.xid, !scanner.isNull(xid) {
            out.append(contentsOf: bytes[xid])
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
        JSONBytes.appendRaw(",\"lsn\":", into: &out)
        if let lsn { JSONBytes.appendUInt(lsn.value, into: &out) } else { JSONBytes.appendRaw("null", into: &out) }
        JSONBytes.appendRaw(",\"xmin\":null},\"op\":\"", into: &out)
        JSONBytes.appendRaw(code, into: &out)
        JSONBytes.appendRaw("\",\"ts_ms\":", into: &out)
        JSONBytes.appendInt(nowMillis, into: &out)
        JSONBytes.appendRaw(",\"transaction\":null", into: &out)
        if code.utf8Start.pointee == UInt8(ascii: "m") {
            // Logical messages (and TimescaleDB chunk drops) as Debezium's message events.
            JSONBytes.appendRaw(",\"message\":{\"prefix\":", into: &out)
            var content: [UInt8] = []
            if op == .message, let after = fields.after {
                let prefix = scanner.member(Array("prefix".utf8), of: after)
                if let prefix { out.append(contentsOf: bytes[prefix]) } else { JSONBytes.appendRaw("\"\"", into: &out) }
                if let text = scanner.member(Array("content".utf8), of: after) {
                    scanner.appendText(text, into: &content)
                }
            } else {
                JSONBytes.appendRaw("\"pgbridge.chunk_dropped\"", into: &out)
                if let chunk = scanner.member(Array("chunk".utf8), of: fields.event) {
                    content.append(contentsOf: bytes[chunk])
                }
            }
            JSONBytes.appendRaw(",\"content\":\"", into: &out)
            content.withUnsafeBytes { JSONBytes.appendBase64($0, into: &out) }
            JSONBytes.appendRaw("\"}", into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    private func appendRow(_ range: Range<Int>?, _ scanner: JSONScanner, into out: inout [UInt8]) {
        if let range, !scanner.isNull(range) {
            out.append(contentsOf: scanner.bytes[range])
        } else {
            JSONBytes.appendRaw("null", into: &out)
        }
    }

    private func appendString(_ contents: Range<Int>?, _ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        guard let contents else {
            JSONBytes.appendRaw("null", into: &out)
            return
        }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: bytes[contents])
        out.append(UInt8(ascii: "\""))
    }

    // MARK: - CloudEvents

    /// CloudEvents 1.0 structured mode: the native event is the `data`.
    func cloudEvent(_ fields: EventFields, _ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        JSONBytes.appendRaw("{\"specversion\":\"1.0\",\"id\":", into: &out)
        appendString(fields.id, bytes, into: &out)
        JSONBytes.appendRaw(",\"source\":\"/pgbridge/", into: &out)
        if let db = fields.db { out.append(contentsOf: bytes[db]) }
        out.append(UInt8(ascii: "/"))
        JSONBytes.appendEscaped(pipe, into: &out)
        JSONBytes.appendRaw("\",\"type\":\"io.pgbridge.change.", into: &out)
        if let op = fields.op { out.append(contentsOf: bytes[op]) }
        out.append(UInt8(ascii: "\""))
        if let table = fields.table {
            JSONBytes.appendRaw(",\"subject\":\"", into: &out)
            if let schema = fields.schema {
                out.append(contentsOf: bytes[schema])
                out.append(UInt8(ascii: "."))
            }
            out.append(contentsOf: bytes[table])
            out.append(UInt8(ascii: "\""))
        } else if let channel = fields.channel {
            JSONBytes.appendRaw(",\"subject\":\"", into: &out)
            out.append(contentsOf: bytes[channel])
            out.append(UInt8(ascii: "\""))
        }
        if let time = fields.commitTime {
            JSONBytes.appendRaw(",\"time\":\"", into: &out)
            out.append(contentsOf: bytes[time])
            out.append(UInt8(ascii: "\""))
        }
        JSONBytes.appendRaw(",\"datacontenttype\":\"application/json\",\"data\":", into: &out)
        out.append(contentsOf: bytes[fields.event])
        out.append(UInt8(ascii: "}"))
    }

    // MARK: - Time

    /// `2026-11-20T10:00:00.123456Z` → milliseconds since 1970 (nil for other shapes).
    static func epochMillis(_ text: Slice<UnsafeBufferPointer<UInt8>>) -> Int64? {
        let b = Array(text)
        guard b.count >= 20, b[4] == 45, b[7] == 45, b[10] == 84, b[13] == 58, b[16] == 58 else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for i in range {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                value = value * 10 + Int64(b[i] - 48)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var millis: Int64 = 0
        if b[19] == 46 {
            var digits = 0
            var i = 20
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if digits < 3 { millis = millis * 10 + Int64(b[i] - 48) }
                digits += 1
                i += 1
            }
            while digits < 3 {
                millis *= 10
                digits += 1
            }
        }
        // days from civil (Howard Hinnant's algorithm)
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis
    }
}
