/// A strict reader of the Prometheus text format (0.0.4), written from the
/// format's description, to check what the daemons serve: HELP and TYPE
/// lines, metric and label name grammar, label value escapes, values,
/// samples grouped under their family, histogram buckets cumulative.
struct ExpositionParser {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }
    struct Family {
        var name: String
        var help: String?
        var type: String?
        var samples: [Sample] = []
    }
    enum Failure: Error, CustomStringConvertible {
        case line(Int, String)
        var description: String { if case .line(let n, let why) = self { return "line \(n): \(why)" }; return "" }
    }

    static func isMetricName(_ s: Substring) -> Bool {
        guard let f = s.first, f.isASCII, f.isLetter || f == "_" || f == ":" else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") }
    }

    static func isLabelName(_ s: Substring) -> Bool {
        guard let f = s.first, f.isASCII, f.isLetter || f == "_" else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    static func value(_ s: Substring) -> Double? {
        switch s {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(s)
        }
    }

    /// The families in order; throws at the first line that breaks the format.
    static func parse(_ text: String) throws -> [Family] {
        guard text.isEmpty || text.hasSuffix("\n") else { throw Failure.line(0, "the text must end with a line feed") }
        var families: [Family] = []
        var seen: Set<String> = []
        var n = 0
        func family(_ name: String, _ line: Int) throws -> Int {
            if let i = families.indices.last, families[i].name == name { return i }
            guard !seen.contains(name) else { throw Failure.line(line, "\(name): its lines are not together") }
            seen.insert(name)
            families.append(Family(name: name))
            return families.count - 1
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            n += 1
            if raw.isEmpty { continue }
            if raw.hasPrefix("#") {
                let parts = raw.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                guard parts.count >= 3, parts[0] == "#", parts[1] == "HELP" || parts[1] == "TYPE" else { continue }  // a comment
                guard isMetricName(parts[2]) else { throw Failure.line(n, "bad metric name \(parts[2])") }
                let i = try family(String(parts[2]), n)
                let rest = parts.count > 3 ? String(parts[3]) : ""
                if parts[1] == "HELP" {
                    guard families[i].help == nil else { throw Failure.line(n, "second HELP") }
                    var out = "", esc = false
                    for c in rest {
                        if esc {
                            guard c == "\\" || c == "n" else { throw Failure.line(n, "bad escape in HELP") }
                            out.append(c == "n" ? "\n" : "\\"); esc = false
                        } else if c == "\\" { esc = true } else { out.append(c) }
                    }
                    families[i].help = out
                } else {
                    guard families[i].type == nil, families[i].samples.isEmpty else { throw Failure.line(n, "TYPE after samples or twice") }
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(rest) else { throw Failure.line(n, "bad type \(rest)") }
                    families[i].type = rest
                }
                continue
            }
            // name{label="value",...} value [timestamp]
            var s = raw[...]
            let nameEnd = s.firstIndex { $0 == "{" || $0 == " " } ?? s.endIndex
            let name = s[..<nameEnd]
            guard isMetricName(name) else { throw Failure.line(n, "bad metric name \(name)") }
            s = s[nameEnd...]
            var labels: [String: String] = [:]
            if s.first == "{" {
                s.removeFirst()
                while s.first != "}" {
                    guard let eq = s.firstIndex(of: "=") else { throw Failure.line(n, "label without =") }
                    let ln = s[..<eq]
                    guard isLabelName(ln), !ln.hasPrefix("__") else { throw Failure.line(n, "bad label name \(ln)") }
                    s = s[s.index(after: eq)...]
                    guard s.first == "\"" else { throw Failure.line(n, "label value not quoted") }
                    s.removeFirst()
                    var v = "", closed = false
                    while let c = s.first {
                        s.removeFirst()
                        if c == "\\" {
                            guard let e = s.first, e == "\\" || e == "\"" || e == "n" else { throw Failure.line(n, "bad escape in a label value") }
                            s.removeFirst()
                            v.append(e == "n" ? "\n" : e)
                        } else if c == "\"" { closed = true; break } else { v.append(c) }
                    }
                    guard closed else { throw Failure.line(n, "unterminated label value") }
                    guard labels.updateValue(v, forKey: String(ln)) == nil else { throw Failure.line(n, "label \(ln) twice") }
                    if s.first == "," { s.removeFirst() } else if s.first != "}" { throw Failure.line(n, "expected , or }") }
                }
                s.removeFirst()
            }
            guard s.first == " " else { throw Failure.line(n, "no space before the value") }
            let fields = s.dropFirst().split(separator: " ")
            guard fields.count == 1 || fields.count == 2, let v = value(fields[0]) else { throw Failure.line(n, "bad value") }
            if fields.count == 2 { guard Int64(fields[1]) != nil else { throw Failure.line(n, "bad timestamp") } }
            // Histogram samples belong to their family's name.
            var fam = String(name)
            for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                let base = String(name.dropLast(suffix.count))
                if families.last?.name == base && families.last?.type == "histogram" { fam = base }
            }
            let i = try family(fam, n)
            families[i].samples.append(Sample(name: String(name), labels: labels, value: v))
        }
        for f in families where f.type == "histogram" {
            var groups: [String: [Sample]] = [:]
            for s in f.samples where s.name == f.name + "_bucket" {
                guard s.labels["le"] != nil else { throw Failure.line(0, "\(f.name): a bucket without le") }
                var key = s.labels
                key["le"] = nil
                groups[key.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: ","), default: []].append(s)
            }
            for (_, buckets) in groups {
                guard buckets.last?.labels["le"] == "+Inf" else { throw Failure.line(0, "\(f.name): no +Inf bucket") }
                let bounds = buckets.compactMap { $0.labels["le"].flatMap { value(Substring($0)) } }
                guard bounds == bounds.sorted(), zip(buckets, buckets.dropFirst()).allSatisfy({ $0.value <= $1.value }) else {
                    throw Failure.line(0, "\(f.name): buckets not cumulative")
                }
                let count = f.samples.first { $0.name == f.name + "_count" }?.value
                guard count == buckets.last?.value else { throw Failure.line(0, "\(f.name): _count is not the +Inf bucket") }
            }
        }
        return families
    }
}
