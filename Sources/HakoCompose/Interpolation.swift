/// `${VAR}` substitution in Compose values, as `docker stack deploy` does it:
/// `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}`
/// (unset), `${VAR:?message}` / `${VAR?message}` (an error), `$$` for a
/// literal `$`. Any other `$` is an error. Defaults are not themselves
/// interpolated and end at the first `}`.
public enum Interpolation {
    public enum Failure: Error, Sendable, Equatable {
        /// `${VAR:?message}` with VAR unset (or empty).
        case required(variable: String, message: String)
        /// A `$` that starts none of the forms.
        case invalid(String)
    }

    /// `text` with its variables replaced; `unset` collects the names of
    /// variables that were unset and had no default (they become "").
    public static func apply(_ text: String, lookup: (String) -> String?, unset: inout [String]) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        let c = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < c.count {
            guard c[i] == "$" else { out.append(c[i]); i += 1; continue }
            guard i + 1 < c.count else { throw .invalid(text) }
            let n = c[i + 1]
            if n == "$" { out.append("$"); i += 2; continue }
            if isNameStart(n) {
                var j = i + 1
                while j < c.count && isName(c[j]) { j += 1 }
                let name = String(String.UnicodeScalarView(c[(i + 1)..<j]))
                if let v = lookup(name) { out.append(contentsOf: v.unicodeScalars) } else { unset.append(name) }
                i = j
                continue
            }
            guard n == "{" else { throw .invalid(text) }
            guard let close = c[(i + 2)...].firstIndex(of: "}") else { throw .invalid(text) }
            let body = Array(c[(i + 2)..<close])
            guard let first = body.first, isNameStart(first) else { throw .invalid(text) }
            var j = 1
            while j < body.count && isName(body[j]) { j += 1 }
            let name = String(String.UnicodeScalarView(body[0..<j]))
            let rest = body[j...]
            let value = lookup(name)
            if rest.isEmpty {
                if let value { out.append(contentsOf: value.unicodeScalars) } else { unset.append(name) }
            } else {
                var op = Array(rest.prefix(2))
                let colon = op.first == ":"
                if !colon { op = Array(rest.prefix(1)) }
                guard let kind = op.last, kind == "-" || kind == "?" else { throw .invalid(text) }
                let arg = String(String.UnicodeScalarView(rest.dropFirst(op.count)))
                let missing = value == nil || (colon && value == "")
                if kind == "-" {
                    out.append(contentsOf: (missing ? arg : value ?? "").unicodeScalars)
                } else {
                    guard !missing, let value else { throw .required(variable: name, message: arg) }
                    out.append(contentsOf: value.unicodeScalars)
                }
            }
            i = close + 1
        }
        return String(out)
    }

    static func isNameStart(_ s: Unicode.Scalar) -> Bool { s == "_" || (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") }
    static func isName(_ s: Unicode.Scalar) -> Bool { isNameStart(s) || (s >= "0" && s <= "9") }
}

/// `.env` and `env_file` files: `KEY=VALUE` lines, `#` comments and blank
/// lines skipped, an optional `export ` prefix.
public enum EnvFileText {
    public struct Failure: Error, Sendable, Equatable {
        public var line: Int
        public var message: String
    }

    /// For `env_file` (Docker's `--env-file` rules): the value is the rest of
    /// the line as written; a bare `KEY` takes its value from `lookup` and is
    /// left out when that has none.
    /// For `.env` (`dotEnv`): matching quotes around a value are removed, and
    /// a bare `KEY` is an error.
    public static func parse(_ text: String, dotEnv: Bool, lookup: (String) -> String?) throws(Failure) -> [(String, String)] {
        var out: [(String, String)] = []
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" }).enumerated() {
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let t = line.drop(while: { $0 == " " || $0 == "\t" })
            if t.isEmpty || t.hasPrefix("#") { continue }
            var entry = t
            if dotEnv && entry.hasPrefix("export ") { entry = entry.dropFirst(7).drop(while: { $0 == " " }) }
            if let eq = entry.firstIndex(of: "=") {
                let key = String(entry[..<eq]).trimmingSpaces
                guard !key.isEmpty, !key.contains(" "), !key.contains("\t") else {
                    throw Failure(line: i + 1, message: "invalid variable name in \"\(line)\"")
                }
                var value = String(entry[entry.index(after: eq)...])
                if dotEnv {
                    value = value.trimmingSpaces
                    if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                        value = String(value.dropFirst().dropLast())
                    }
                }
                out.append((key, value))
            } else {
                let key = String(entry).trimmingSpaces
                guard !dotEnv, !key.contains(" ") else { throw Failure(line: i + 1, message: "\"\(key)\" is not KEY=VALUE") }
                if let v = lookup(key) { out.append((key, v)) }
            }
        }
        return out
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

/// A command written as one string (`command: nginx -g "daemon off;"`) split
/// into arguments as a POSIX shell splits words: whitespace separates, single
/// quotes keep everything, double quotes keep all but `\"` and `\\`, a
/// backslash outside quotes escapes the next character. No expansion.
public enum ShellWords {
    public struct Failure: Error, Sendable, Equatable { public var message: String }

    public static func split(_ s: String) throws(Failure) -> [String] {
        var words: [String] = []
        var cur = ""
        var inWord = false
        var it = Array(s).makeIterator()
        while let ch = it.next() {
            switch ch {
            case " ", "\t", "\n", "\r":
                if inWord { words.append(cur); cur = ""; inWord = false }
            case "'":
                inWord = true
                var closed = false
                while let c = it.next() { if c == "'" { closed = true; break }; cur.append(c) }
                guard closed else { throw Failure(message: "unterminated single quote in \"\(s)\"") }
            case "\"":
                inWord = true
                var closed = false
                while let c = it.next() {
                    if c == "\"" { closed = true; break }
                    if c == "\\" {
                        guard let n = it.next() else { break }
                        if n != "\"" && n != "\\" && n != "$" && n != "`" { cur.append("\\") }
                        cur.append(n)
                    } else {
                        cur.append(c)
                    }
                }
                guard closed else { throw Failure(message: "unterminated double quote in \"\(s)\"") }
            case "\\":
                inWord = true
                if let n = it.next() { cur.append(n) }
            default:
                inWord = true
                cur.append(ch)
            }
        }
        if inWord { words.append(cur) }
        return words
    }
}

