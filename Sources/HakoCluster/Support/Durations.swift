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

/// Sizes as flags spell them: "512m", "1g", "64k", "1024" (bytes).
public enum ByteSizes {
    public static func parse(_ text: String) -> Int64? {
        var digits = text.trimmed.lowercased()
        guard !digits.isEmpty else { return nil }
        var mult: Int64 = 1
        if digits.hasSuffix("b") { digits.removeLast() }
        switch digits.last {
        case "k": mult = 1 << 10; digits.removeLast()
        case "m": mult = 1 << 20; digits.removeLast()
        case "g": mult = 1 << 30; digits.removeLast()
        case "t": mult = 1 << 40; digits.removeLast()
        default: break
        }
        if let n = Int64(digits), n >= 0 {
            let (v, o) = n.multipliedReportingOverflow(by: mult)
            return o ? nil : v
        }
        if let d = Double(digits), d >= 0, d.isFinite, d * Double(mult) < 9e18 { return Int64(d * Double(mult)) }
        return nil
    }

    /// 1536 MiB → "1.5GiB".
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(bytes)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        if i == 0 { return "\(bytes)B" }
        let r = (v * 10).rounded() / 10
        return (r == r.rounded() ? String(Int(r)) : String(r)) + units[i]
    }
}
