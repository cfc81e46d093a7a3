import HakoSystem

/// The functions a `--format` template can call: Go's built-ins and docker's additions.
enum TemplateFunctions {
    static func call(_ name: String, _ a: [TemplateValue], _ pos: Position) throws -> TemplateValue {
        func arity(_ n: Int) throws {
            guard a.count == n else { throw pos.error("wrong number of args for \(name): want \(n) got \(a.count)") }
        }
        func string(_ v: TemplateValue) throws -> String {
            guard case .string(let s) = v else { throw pos.error("\(name): expected a string, got \(TemplateScope.typeName(v)) \(v.text)") }
            return s
        }
        func int(_ v: TemplateValue) throws -> Int64 {
            switch v {
            case .int(let i): return i
            case .double(let d) where d == d.rounded(): return Int64(d)
            default: throw pos.error("\(name): expected an integer, got \(TemplateScope.typeName(v)) \(v.text)")
            }
        }
        switch name {
        case "json":
            try arity(1)
            return .string(a[0].json)
        case "join":
            try arity(2)
            guard case .array(let items) = a[0] else { throw pos.error("join: expected a list, got \(TemplateScope.typeName(a[0]))") }
            return .string(items.map(\.text).joined(separator: try string(a[1])))
        case "split":
            try arity(2)
            let sep = try string(a[1])
            let s = try string(a[0])
            guard !sep.isEmpty else { return .array(s.map { .string(String($0)) }) }
            return .array(splitString(s, sep).map { .string($0) })
        case "lower":
            try arity(1)
            return .string(try string(a[0]).lowercased())
        case "upper":
            try arity(1)
            return .string(try string(a[0]).uppercased())
        case "title":
            try arity(1)
            return .string(try string(a[0]).split(separator: " ", omittingEmptySubsequences: false)
                .map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " "))
        case "pad":
            try arity(3)
            let s = try string(a[0])
            return .string(String(repeating: " ", count: Int(max(0, try int(a[1])))) + s + String(repeating: " ", count: Int(max(0, try int(a[2])))))
        case "truncate":
            try arity(2)
            let s = try string(a[0])
            let n = Int(max(0, try int(a[1])))
            return .string(s.count <= n ? s : String(s.prefix(n)))
        case "len":
            try arity(1)
            switch a[0] {
            case .string(let s): return .int(Int64(s.utf8.count))
            case .array(let x): return .int(Int64(x.count))
            case .object(let o): return .int(Int64(o.keys.count))
            default: throw pos.error("len of type \(TemplateScope.typeName(a[0]))")
            }
        case "index":
            guard !a.isEmpty else { throw pos.error("wrong number of args for index: want at least 1 got 0") }
            var cur = a[0]
            for k in a.dropFirst() {
                switch (cur, k) {
                case (.array(let x), _):
                    let i = try int(k)
                    guard i >= 0, i < x.count else { throw pos.error("index: index out of range: \(i)") }
                    cur = x[Int(i)]
                case (.object(let o), .string(let key)):
                    cur = o[key] ?? .null
                case (.string(let str), _):
                    // Go indexes a string's bytes.
                    let bytes = Array(str.utf8)
                    let i = try int(k)
                    guard i >= 0, i < bytes.count else { throw pos.error("index: index out of range: \(i)") }
                    cur = .int(Int64(bytes[Int(i)]))
                case (.null, _):
                    return .null
                default:
                    throw pos.error("index: can't index item of type \(TemplateScope.typeName(cur)) with \(k.text)")
                }
            }
            return cur
        case "slice":
            guard let first = a.first else { throw pos.error("wrong number of args for slice") }
            let bounds = try a.dropFirst().map(int)
            switch first {
            case .string(let s):
                let u = Array(s.utf8)
                let lo = Int(bounds.first ?? 0), hi = Int(bounds.count > 1 ? bounds[1] : Int64(u.count))
                guard lo >= 0, lo <= hi, hi <= u.count else { throw pos.error("slice: index out of range") }
                return .string(String(decoding: u[lo..<hi], as: UTF8.self))
            case .array(let x):
                let lo = Int(bounds.first ?? 0), hi = Int(bounds.count > 1 ? bounds[1] : Int64(x.count))
                guard lo >= 0, lo <= hi, hi <= x.count else { throw pos.error("slice: index out of range") }
                return .array(Array(x[lo..<hi]))
            default: throw pos.error("can't slice item of type \(TemplateScope.typeName(first))")
            }
        case "print":
            return .string(sprint(a))
        case "html":
            // Go's HTMLEscapeString of the operands as print joins them.
            var out = ""
            for c in sprint(a).unicodeScalars {
                switch c {
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\0": out += "\u{FFFD}"
                default: out.unicodeScalars.append(c)
                }
            }
            return .string(out)
        case "js":
            // Go's JSEscapeString.
            var out = ""
            for c in sprint(a).unicodeScalars {
                switch c {
                case "\\": out += "\\\\"
                case "'": out += "\\'"
                case "\"": out += "\\\""
                case "<", ">", "&", "=": out += "\\u00" + String(c.value, radix: 16, uppercase: true)
                default:
                    if c.value < 0x20 || (c.value >= 0x80 && c.value < 0xa0) {
                        let h = String(c.value, radix: 16, uppercase: true)
                        out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                    } else {
                        out.unicodeScalars.append(c)
                    }
                }
            }
            return .string(out)
        case "urlquery":
            // Go's url.QueryEscape.
            return .string(sprint(a).queryEscaped)
        case "printf":
            guard let f = a.first else { throw pos.error("wrong number of args for printf: want at least 1 got 0") }
            return .string(try Printf.format(try string(f), Array(a.dropFirst()), pos))
        case "eq":
            guard a.count >= 2 else { throw pos.error("missing argument for comparison") }
            return .bool(try a.dropFirst().contains { try equal(a[0], $0, pos) })
        case "ne":
            try arity(2)
            return .bool(!(try equal(a[0], a[1], pos)))
        case "lt", "le", "gt", "ge":
            try arity(2)
            let c = try compare(a[0], a[1], pos)
            switch name {
            case "lt": return .bool(c < 0)
            case "le": return .bool(c <= 0)
            case "gt": return .bool(c > 0)
            default: return .bool(c >= 0)
            }
        case "and":
            guard !a.isEmpty else { throw pos.error("wrong number of args for and") }
            return a.first { !$0.isTrue } ?? a[a.count - 1]
        case "or":
            guard !a.isEmpty else { throw pos.error("wrong number of args for or") }
            return a.first { $0.isTrue } ?? a[a.count - 1]
        case "not":
            try arity(1)
            return .bool(!a[0].isTrue)
        default:
            throw pos.error("function \"\(name)\" not defined")
        }
    }

    /// Go's strings.Split with a non-empty separator.
    static func splitString(_ s: String, _ sep: String) -> [String] {
        let b = Array(s.utf8), p = Array(sep.utf8)
        var out: [String] = []
        var start = 0, i = 0
        while i + p.count <= b.count {
            if Array(b[i..<(i + p.count)]) == p {
                out.append(String(decoding: b[start..<i], as: UTF8.self))
                i += p.count
                start = i
            } else {
                i += 1
            }
        }
        out.append(String(decoding: b[start...], as: UTF8.self))
        return out
    }

    /// The Go type printf's %T names for a value read from JSON.
    static func goType(_ v: TemplateValue) -> String {
        switch v {
        case .null: return "<nil>"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float64"
        case .string: return "string"
        case .array: return "[]interface {}"
        case .object: return "map[string]interface {}"
        }
    }

    /// Go's Sprint: spaces only between operands when neither is a string.
    static func sprint(_ a: [TemplateValue]) -> String {
        var out = ""
        for (i, v) in a.enumerated() {
            if i > 0, !(isString(a[i - 1]) || isString(v)) { out += " " }
            out += v.text
        }
        return out
    }

    static func isString(_ v: TemplateValue) -> Bool { if case .string = v { return true } else { return false } }

    static func number(_ v: TemplateValue) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    static func equal(_ x: TemplateValue, _ y: TemplateValue, _ pos: Position) throws -> Bool {
        if let a = number(x), let b = number(y) { return a == b }
        switch (x, y) {
        case (.string(let a), .string(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.null, .null): return true
        case (.null, _), (_, .null): return false
        default: throw pos.error("incompatible types for comparison: \(TemplateScope.typeName(x)) and \(TemplateScope.typeName(y))")
        }
    }

    static func compare(_ x: TemplateValue, _ y: TemplateValue, _ pos: Position) throws -> Int {
        if let a = number(x), let b = number(y) { return a < b ? -1 : a > b ? 1 : 0 }
        if case .string(let a) = x, case .string(let b) = y { return a < b ? -1 : a > b ? 1 : 0 }
        throw pos.error("incompatible types for comparison: \(TemplateScope.typeName(x)) and \(TemplateScope.typeName(y))")
    }
}

/// Go's fmt verbs a format string uses: %s %v %d %q %f %x %X %o %b %c %t %T %%, with flags
/// (-, 0, +, space), width and precision.
enum Printf {
    static func format(_ f: String, _ args: [TemplateValue], _ pos: Position) throws -> String {
        var out = ""
        var next = 0
        let s = Array(f)
        var i = 0
        while i < s.count {
            guard s[i] == "%" else { out.append(s[i]); i += 1; continue }
            i += 1
            guard i < s.count else { out += "%!(NOVERB)"; break }
            if s[i] == "%" { out += "%"; i += 1; continue }
            var left = false, zero = false, plus = false
            while i < s.count, "-0+ #".contains(s[i]) {
                if s[i] == "-" { left = true }
                if s[i] == "0" { zero = true }
                if s[i] == "+" { plus = true }
                i += 1
            }
            var width = 0
            while i < s.count, let d = s[i].wholeNumberValue { width = width * 10 + d; i += 1 }
            var precision: Int?
            if i < s.count, s[i] == "." {
                i += 1
                var p = 0
                while i < s.count, let d = s[i].wholeNumberValue { p = p * 10 + d; i += 1 }
                precision = p
            }
            guard i < s.count else { out += "%!(NOVERB)"; break }
            let verb = s[i]
            i += 1
            guard next < args.count else { out += "%!\(verb)(MISSING)"; continue }
            let v = args[next]
            next += 1
            var text: String
            switch verb {
            case "s", "v":
                text = v.text
                if let p = precision, verb == "s" { text = String(text.prefix(p)) }
            case "q": text = TemplateValue.quote(v.text)
            case "t": text = v.text
            case "d":
                guard let n = TemplateFunctions.number(v) else { text = "%!d(\(TemplateScope.typeName(v))=\(v.text))"; break }
                text = String(Int64(n))
                if plus && n >= 0 { text = "+" + text }
            case "f", "g", "e":
                guard let n = TemplateFunctions.number(v) else { text = "%!f(\(TemplateScope.typeName(v))=\(v.text))"; break }
                text = fixed(n, precision ?? 6)
                if plus && n >= 0 { text = "+" + text }
            case "c":
                guard let n = TemplateFunctions.number(v), let scalar = Unicode.Scalar(UInt32(clamping: Int64(n))) else {
                    text = "%!c(\(TemplateScope.typeName(v))=\(v.text))"; break
                }
                text = String(Character(scalar))
            case "o", "b":
                guard let n = TemplateFunctions.number(v) else { text = "%!\(verb)(\(TemplateScope.typeName(v))=\(v.text))"; break }
                text = String(Int64(n), radix: verb == "o" ? 8 : 2)
            case "T":
                text = TemplateFunctions.goType(v)
            case "x", "X":
                if let n = TemplateFunctions.number(v) {
                    text = String(Int64(n), radix: 16, uppercase: verb == "X")
                } else {
                    text = v.text.utf8.map { b in let h = String(b, radix: 16, uppercase: verb == "X"); return h.count == 1 ? "0" + h : h }.joined()
                }
            default:
                throw pos.error("printf: unsupported verb %\(verb)")
            }
            if text.count < width {
                let padding = String(repeating: zero && !left ? "0" : " ", count: width - text.count)
                text = left ? text + padding : padding + text
            }
            out += text
        }
        if next < args.count { out += "%!(EXTRA " + args[next...].map { "\(TemplateScope.typeName($0))=\($0.text)" }.joined(separator: ", ") + ")" }
        return out
    }

    static func fixed(_ v: Double, _ precision: Int) -> String {
        guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "+Inf" : "-Inf") }
        var scale = 1.0
        for _ in 0..<precision { scale *= 10 }
        let negative = v < 0
        let scaled = (abs(v) * scale).rounded()
        let whole = Int64(scaled / scale)
        var frac = String(Int64(scaled - Double(whole) * scale))
        frac = String(repeating: "0", count: max(0, precision - frac.count)) + frac
        return (negative ? "-" : "") + String(whole) + (precision > 0 ? "." + frac : "")
    }
}
