/// Prometheus text exposition format (version 0.0.4): metric families with
/// HELP and TYPE lines, samples with escaped label values. Pure: the daemons
/// build the families at scrape time and `MetricsServer` serves the text.
public struct MetricFamily: Sendable, Equatable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    public struct Sample: Sendable, Equatable {
        /// Appended to the family's name: "", "_bucket", "_sum", "_count".
        public var suffix: String
        public var labels: [(String, String)]
        public var value: Double

        public init(suffix: String = "", labels: [(String, String)] = [], value: Double) {
            self.suffix = suffix
            self.labels = labels
            self.value = value
        }

        public static func == (a: Sample, b: Sample) -> Bool {
            a.suffix == b.suffix && a.value == b.value && a.labels.elementsEqual(b.labels, by: { $0 == $1 })
        }
    }

    public var name: String
    public var help: String
    public var kind: Kind
    public var samples: [Sample]

    public init(_ name: String, _ kind: Kind, help: String, samples: [Sample] = []) {
        self.name = name
        self.kind = kind
        self.help = help
        self.samples = samples
    }

    /// One gauge (or counter) sample per label value, in the order given.
    public static func byLabel(_ name: String, _ kind: Kind, help: String, label: String, _ values: [(String, Double)]) -> MetricFamily {
        MetricFamily(name, kind, help: help, samples: values.map { Sample(labels: [(label, $0.0)], value: $0.1) })
    }
}

public enum Exposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    public static func isMetricName(_ s: String) -> Bool {
        guard let f = s.utf8.first, isNameStart(f, colon: true) else { return false }
        return s.utf8.allSatisfy { isNameStart($0, colon: true) || ($0 >= 48 && $0 <= 57) }
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
    public static func isLabelName(_ s: String) -> Bool {
        guard let f = s.utf8.first, isNameStart(f, colon: false), !s.hasPrefix("__") else { return false }
        return s.utf8.allSatisfy { isNameStart($0, colon: false) || ($0 >= 48 && $0 <= 57) }
    }

    static func isNameStart(_ c: UInt8, colon: Bool) -> Bool {
        (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || (colon && c == 58)
    }

    /// Label values escape backslash, double quote and line feed.
    public static func escapeLabel(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// HELP text escapes backslash and line feed.
    public static func escapeHelp(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Integers print without a fraction; infinities and NaN as Prometheus spells them.
    public static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        for f in families {
            out += "# HELP \(f.name) \(escapeHelp(f.help))\n# TYPE \(f.name) \(f.kind.rawValue)\n"
            for s in f.samples {
                out += f.name + s.suffix
                if !s.labels.isEmpty {
                    out += "{" + s.labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
                }
                out += " " + format(s.value) + "\n"
            }
        }
        return out
    }
}

/// A cumulative histogram with fixed upper bounds.
public struct Histogram: Sendable, Equatable {
    public let bounds: [Double]
    public private(set) var counts: [UInt64]
    public private(set) var sum = 0.0
    public private(set) var count: UInt64 = 0

    public init(bounds: [Double]) {
        self.bounds = bounds.sorted()
        counts = Array(repeating: 0, count: bounds.count)
    }

    public mutating func observe(_ x: Double) {
        guard x.isFinite else { return }
        sum += x
        count += 1
        if let i = bounds.firstIndex(where: { x <= $0 }) { counts[i] += 1 }
    }

    /// `_bucket{le=…}` (cumulative, ending with +Inf), `_sum`, `_count`.
    public func family(_ name: String, help: String) -> MetricFamily {
        var samples: [MetricFamily.Sample] = []
        var running: UInt64 = 0
        for (b, c) in zip(bounds, counts) {
            running += c
            samples.append(.init(suffix: "_bucket", labels: [("le", Exposition.format(b))], value: Double(running)))
        }
        samples.append(.init(suffix: "_bucket", labels: [("le", "+Inf")], value: Double(count)))
        samples.append(.init(suffix: "_sum", value: sum))
        samples.append(.init(suffix: "_count", value: Double(count)))
        return MetricFamily(name, .histogram, help: help, samples: samples)
    }
}
