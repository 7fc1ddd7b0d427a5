#if canImport(Glibc)
    import Glibc
#endif

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. A
/// server's wish, so it is bounded: at least 1 s, at most an hour (a later
/// date is tried hourly); anything unreadable is ignored.
public enum RetryAfter {
    public static let longest: Duration = .seconds(3600)

    /// The wait `value` asks for; `now` is Unix seconds (the clock by default).
    public static func parse(_ value: String, now: Int64? = nil) -> Duration? {
        let text = value.trimmingSpaces
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        if text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
            // Digits only: seconds (a huge number is the longest wait, not an overflow).
            let seconds = Int64(text.prefix(10)) ?? Int64.max
            return bounded(text.utf8.count > 10 ? Int64.max : seconds)
        }
        guard let date = httpDate(text) else { return nil }
        return bounded(date - (now ?? Int64(time(nil))))
    }

    static func bounded(_ seconds: Int64) -> Duration {
        .seconds(min(max(seconds, 1), Int64(longest.components.seconds)))
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 says
    /// senders use, as Unix seconds.
    static func httpDate(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int64(parts[1]), let year = Int64(parts[3]),
            let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].firstIndex(of: String(parts[2]))
        else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let h = Int64(clock[0]), let m = Int64(clock[1]), let s = Int64(clock[2]),
            (1...31).contains(day), (1970...9999).contains(year), (0...23).contains(h), (0...59).contains(m), (0...60).contains(s)
        else { return nil }
        return daysFromCivil(year, Int64(month) + 1, day) * 86400 + h * 3600 + m * 60 + s
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}

extension String {
    var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let end = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(scalars[start...end])
    }
}
