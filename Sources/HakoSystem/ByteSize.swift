/// Sizes as Docker's flags spell them (its RAMInBytes): "512m", "1.5g",
/// "64MiB", "4096" — b, k, m, g, t as binary multiples, decimals allowed and
/// rounded down to a byte. The one parser of sizes for the engine, the cluster
/// and the command line.
public enum ByteSize {
    public static func parse(_ text: String) -> UInt64? {
        var t = text.lowercased()
        if t.hasSuffix("ib") { t.removeLast(2) } else if t.hasSuffix("b") { t.removeLast() }
        var shift: UInt64 = 0
        if let last = t.last, let s = ["k": UInt64(10), "m": 20, "g": 30, "t": 40][String(last)] {
            shift = s
            t.removeLast()
        }
        guard !t.isEmpty, t.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 }) else { return nil }
        if let n = UInt64(t) {
            let (v, overflow) = n.multipliedReportingOverflow(by: UInt64(1) << shift)
            return overflow || v > UInt64(Int64.max) ? nil : v
        }
        guard let d = Double(t), d.isFinite else { return nil }
        let v = (d * Double(UInt64(1) << shift)).rounded(.down)
        return v < 9.0e18 ? UInt64(v) : nil
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
