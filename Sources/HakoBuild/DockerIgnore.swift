/// Shell-style patterns as Go's filepath.Match reads them — `*` (not `/`),
/// `?`, `[a-z]`, `[^…]`, `\` escaping — plus `**`, any number of directories
/// (`.dockerignore` only).
public struct Glob: Sendable, Equatable {
    public let pattern: String
    let chars: [Character]
    let doubleStar: Bool

    public init(_ pattern: String, doubleStar: Bool = false) {
        self.pattern = pattern
        chars = Array(pattern)
        self.doubleStar = doubleStar
    }

    /// Whether the pattern has any special character (else it names one path).
    public var isLiteral: Bool { !chars.contains { $0 == "*" || $0 == "?" || $0 == "[" || $0 == "\\" } }

    public func matches(_ path: String) -> Bool {
        Glob.match(chars[...], Array(path)[...], doubleStar: doubleStar)
    }

    static func match(_ p: ArraySlice<Character>, _ s: ArraySlice<Character>, doubleStar: Bool) -> Bool {
        var p = p, s = s
        while let c = p.first {
            switch c {
            case "*":
                if doubleStar, p.dropFirst().first == "*" {
                    var rest = p.dropFirst(2)
                    // "**/" also matches no directory at all.
                    if rest.first == "/" {
                        if match(rest.dropFirst(), s, doubleStar: doubleStar) { return true }
                        rest = rest.dropFirst()
                        var t = s
                        while !t.isEmpty {
                            if t.first == "/", match(rest, t.dropFirst(), doubleStar: doubleStar) { return true }
                            t = t.dropFirst()
                        }
                        return false
                    }
                    var t = s
                    while true {
                        if match(rest, t, doubleStar: doubleStar) { return true }
                        if t.isEmpty { return false }
                        t = t.dropFirst()
                    }
                }
                let rest = p.dropFirst()
                var t = s
                while true {
                    if match(rest, t, doubleStar: doubleStar) { return true }
                    guard let f = t.first, f != "/" else { return false }
                    t = t.dropFirst()
                }
            case "?":
                guard let f = s.first, f != "/" else { return false }
                p = p.dropFirst(); s = s.dropFirst()
            case "[":
                guard let f = s.first, f != "/" else { return false }
                var q = p.dropFirst()
                var negate = false
                if q.first == "^" || q.first == "!" { negate = true; q = q.dropFirst() }
                var hit = false
                var first = true
                while let x = q.first, x != "]" || first {
                    first = false
                    var lo = x
                    q = q.dropFirst()
                    if lo == "\\", let e = q.first { lo = e; q = q.dropFirst() }
                    var hi = lo
                    if q.first == "-", let h = q.dropFirst().first, h != "]" {
                        hi = h
                        q = q.dropFirst(2)
                        if hi == "\\", let e = q.first { hi = e; q = q.dropFirst() }
                    }
                    if lo <= f && f <= hi { hit = true }
                }
                guard q.first == "]" else { return false }  // malformed class: no match
                if hit == negate { return false }
                p = q.dropFirst(); s = s.dropFirst()
            case "\\":
                let e = p.dropFirst().first ?? "\\"
                guard s.first == e else { return false }
                p = p.dropFirst(2); s = s.dropFirst()
            default:
                guard s.first == c else { return false }
                p = p.dropFirst(); s = s.dropFirst()
            }
        }
        return s.isEmpty
    }
}

/// `.dockerignore`: which context paths a build leaves out. One pattern a
/// line, `#` comments, `!` re-includes; patterns are cleaned paths relative
/// to the context (a leading `/` is dropped); the last pattern that matches a
/// path or one of its parent directories decides.
public struct DockerIgnore: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        public var glob: Glob
        public var exception: Bool
    }

    public var rules: [Rule]

    public init(_ text: String) {
        rules = []
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            var line = raw.trimmingWhitespace
            if line.hasPrefix("#") || line.isEmpty { continue }
            var exception = false
            if line.hasPrefix("!") {
                exception = true
                line = String(line.dropFirst()).trimmingWhitespace
            }
            let cleaned = DockerIgnore.clean(line)
            if cleaned.isEmpty { continue }
            rules.append(Rule(glob: Glob(cleaned, doubleStar: true), exception: exception))
        }
    }

    /// A path cleaned as Go's filepath.Clean would, relative ("/a/./b/" → "a/b", "/" → ".").
    public static func clean(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/") {
            if p == "." || p.isEmpty { continue }
            if p == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(p)
        }
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    /// Whether the context path `path` ("dir/file", relative, clean) is excluded.
    public func excludes(_ path: String) -> Bool {
        var excluded = false
        let parents = DockerIgnore.parents(path)
        for r in rules {
            if r.glob.matches(path) || parents.contains(where: r.glob.matches) { excluded = !r.exception }
        }
        return excluded
    }

    /// Whether some exception pattern could re-include something below the
    /// excluded directory `dir` (then the walk must still look inside).
    public func mayReinclude(below dir: String) -> Bool {
        rules.contains { r in
            r.exception && (r.glob.pattern.hasPrefix(dir + "/") || r.glob.pattern.contains("*") || r.glob.pattern.contains("?") || r.glob.pattern.contains("["))
        }
    }

    static func parents(_ path: String) -> [String] {
        var out: [String] = []
        var p = Substring(path)
        while let slash = p.lastIndex(of: "/") {
            p = p[..<slash]
            out.append(String(p))
        }
        return out
    }
}
