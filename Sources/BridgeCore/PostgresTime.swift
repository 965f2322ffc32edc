/// PostgreSQL's binary timestamps count microseconds from 2000-01-01 00:00:00 UTC.
public enum PostgresTime {
    /// Seconds between the Unix epoch and PostgreSQL's epoch.
    public static let epochOffsetSeconds: Int64 = 946_684_800

    /// Microseconds since the PostgreSQL epoch for a Unix time in microseconds.
    public static func fromUnixMicroseconds(_ micros: Int64) -> Int64 {
        micros - epochOffsetSeconds * 1_000_000
    }

    /// The UTC calendar date and time of a Unix time in microseconds.
    public struct Components: Equatable, Sendable {
        public var year: Int64
        public var month: Int
        public var day: Int
        /// Seconds since midnight.
        public var secondOfDay: Int64
        /// Microseconds within the second (0…999,999).
        public var micros: Int64
    }

    public static func components(unixMicros: Int64) -> Components {
        var seconds = unixMicros / 1_000_000
        var micros = unixMicros % 1_000_000
        if micros < 0 {
            micros += 1_000_000
            seconds -= 1
        }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let (year, month, day) = civilFromDays(days)
        return Components(year: year, month: month, day: day, secondOfDay: secondOfDay, micros: micros)
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.ffffffZ` for a PostgreSQL timestamp (microseconds since 2000).
    public static func writeRFC3339(_ pgMicros: Int64, into out: inout [UInt8]) {
        let parts = components(unixMicros: pgMicros + epochOffsetSeconds * 1_000_000)
        let (year, month, day, secondOfDay, micros) = (
            parts.year, parts.month, parts.day, parts.secondOfDay, parts.micros
        )
        guard year >= 0, year <= 9999 else {
            // Outside what RFC 3339 can express: fall back to the raw microsecond count.
            out.append(contentsOf: String(pgMicros).utf8)
            return
        }
        appendDigits(Int(year), 4, &out)
        out.append(UInt8(ascii: "-"))
        appendDigits(month, 2, &out)
        out.append(UInt8(ascii: "-"))
        appendDigits(day, 2, &out)
        out.append(UInt8(ascii: "T"))
        appendDigits(Int(secondOfDay / 3600), 2, &out)
        out.append(UInt8(ascii: ":"))
        appendDigits(Int(secondOfDay % 3600 / 60), 2, &out)
        out.append(UInt8(ascii: ":"))
        appendDigits(Int(secondOfDay % 60), 2, &out)
        out.append(UInt8(ascii: "."))
        appendDigits(Int(micros), 6, &out)
        out.append(UInt8(ascii: "Z"))
    }

    /// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    static func civilFromDays(_ z0: Int64) -> (Int64, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = Int(doy - (153 * mp + 2) / 5 + 1)
        let m = Int(mp < 10 ? mp + 3 : mp - 9)
        return (m <= 2 ? y + 1 : y, m, d)
    }

    /// Howard Hinnant's days-from-civil algorithm, the inverse of `civilFromDays`.
    public static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS[.f…]Z`, the form `writeRFC3339` writes
    /// (events' `commit_time`); nil for any other shape.
    public static func unixSeconds(rfc3339 text: UnsafeBufferPointer<UInt8>) -> Double? {
        guard text.count >= 20, text[text.count - 1] == UInt8(ascii: "Z") else { return nil }
        func number(_ start: Int, _ length: Int) -> Int? {
            var value = 0
            for index in start..<(start + length) {
                let digit = Int(text[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2), (1...12).contains(month)
        else { return nil }
        var fraction = 0.0
        if text[19] == UInt8(ascii: ".") {
            var scale = 0.1
            for index in 20..<(text.count - 1) {
                let digit = Int(text[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                fraction += Double(digit) * scale
                scale /= 10
            }
        }
        return Double(daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second) + fraction
    }

    @inline(__always)
    static func appendDigits(_ value: Int, _ width: Int, _ out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var v = value
        while divisor > 0 {
            out.append(UInt8(48 + v / divisor % 10))
            v %= divisor
            divisor /= 10
        }
    }
}
