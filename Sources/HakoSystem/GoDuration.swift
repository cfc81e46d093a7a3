/// Durations as Docker's flags, Dockerfiles and Compose files spell them — Go's
/// `time.ParseDuration`: a sequence of decimal numbers, each with a unit (ns,
/// us or µs, ms, s, m, h), an optional sign; "0" alone is zero; a number
/// without a unit is refused. The one parser of such text in hako.
public enum GoDuration {
    /// - Parameter days: also take "d" (24 h), as hako's cluster configuration does.
    public static func parse(_ text: String, days: Bool = false) -> Duration? {
        guard let ns = nanoseconds(text, days: days) else { return nil }
        return .nanoseconds(ns)
    }

    /// The same in seconds.
    public static func seconds(_ text: String, days: Bool = false) -> Double? {
        nanoseconds(text, days: days).map { Double($0) / 1e9 }
    }

    static func nanoseconds(_ text: String, days: Bool) -> Int64? {
        var rest = Substring(text.trimmed)
        var negative = false
        if rest.first == "-" || rest.first == "+" { negative = rest.first == "-"; rest.removeFirst() }
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { return nil }
        func isNumeral(_ c: Character) -> Bool { c.isASCII && (c.isNumber || c == ".") }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix(while: isNumeral)
            guard !number.isEmpty, let value = Double(number), value.isFinite else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !isNumeral($0) }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs", "μs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            case "d" where days: scale = 86_400e9
            default: return nil
            }
            total += value * scale
        }
        // Go's bound: an Int64 of nanoseconds (about 292 years).
        guard total < 9.2e18 else { return nil }
        let ns = Int64(total.rounded())
        return negative ? -ns : ns
    }

    /// Seconds back in Go's syntax, to the millisecond ("1m30s", "1.5s", "500ms").
    public static func format(_ seconds: Double) -> String {
        let total = Int64((seconds * 1000).rounded())
        if total == 0 { return "0s" }
        if total < 0 { return "-" + format(-seconds) }
        if total < 1000 { return "\(total)ms" }
        var out = ""
        var rest = total
        if rest >= 3_600_000 { out += "\(rest / 3_600_000)h"; rest %= 3_600_000 }
        if rest >= 60_000 { out += "\(rest / 60_000)m"; rest %= 60_000 }
        if rest > 0 {
            var fraction = rest % 1000 == 0 ? "" : "." + String(String(rest % 1000 + 1000).dropFirst())
            while fraction.hasSuffix("0") { fraction.removeLast() }
            out += "\(rest / 1000)\(fraction)s"
        }
        return out
    }
}
