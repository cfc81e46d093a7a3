import HakoSystem

/// Durations as configuration files and flags spell them: "250ms", "1s",
/// "1.5s", "2m", "1h", "1h30m", "90" (seconds).
public enum Durations {
    /// Go's syntax (`GoDuration`) with days, or a plain number of seconds; never negative.
    public static func parse(_ text: String) -> Double? {
        if let plain = Double(text.trimmed) { return plain >= 0 && plain.isFinite ? plain : nil }
        guard let v = GoDuration.seconds(text, days: true), v >= 0 else { return nil }
        return v
    }

    /// 0.25 → "250ms", 1.5 → "1.5s", 5400 → "1h30m".
    public static func format(_ seconds: Double) -> String { GoDuration.format(seconds) }
}
