import HakoSystem

/// Durations as configuration files and flags spell them: "250ms", "1s",
/// "1.5s", "2m", "1h", "1h30m", "90" (seconds).
public enum Durations {
    public static func parse(_ text: String) -> Double? {
        let s = text.trimmed
        guard !s.isEmpty else { return nil }
        if let plain = Double(s), plain >= 0, plain.isFinite { return plain }
        var total = 0.0
        var number = ""
        var unit = ""
        var parts: [(String, String)] = []
        for c in s {
            if c.isNumber || c == "." {
                if !unit.isEmpty { parts.append((number, unit)); number = ""; unit = "" }
                number.append(c)
            } else if c.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(c)
            } else {
                return nil
            }
        }
        guard !number.isEmpty, !unit.isEmpty else { return nil }
        parts.append((number, unit))
        for (n, u) in parts {
            guard let v = Double(n), v.isFinite else { return nil }
            switch u {
            case "ms": total += v / 1000
            case "s": total += v
            case "m": total += v * 60
            case "h": total += v * 3600
            case "d": total += v * 86400
            default: return nil
            }
        }
        return total
    }

    /// 0.25 → "250ms", 3 → "3s", 5400 → "1h30m".
    public static func format(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        var s = Int(seconds.rounded())
        var out = ""
        if s >= 3600 { out += "\(s / 3600)h"; s %= 3600 }
        if s >= 60 { out += "\(s / 60)m"; s %= 60 }
        if s > 0 || out.isEmpty { out += "\(s)s" }
        return out
    }
}
