/// Docker's word processing for Dockerfile arguments: `$VAR`, `${VAR}`,
/// `${VAR:-default}`, `${VAR-default}`, `${VAR:+alternative}`,
/// `${VAR+alternative}`, `${VAR:?message}`, `${VAR?message}`; single quotes
/// keep their text literal, double quotes allow substitution, and both are
/// removed; the escape character (`\` or the `# escape` directive's) makes
/// the next character literal.
public struct Substitution {
    public var escape: Character
    /// A variable's value, nil when it is not set.
    public var lookup: (String) -> String?

    public init(escape: Character = "\\", lookup: @escaping (String) -> String?) {
        self.escape = escape
        self.lookup = lookup
    }

    public init(escape: Character = "\\", variables: [String: String]) {
        self.init(escape: escape) { variables[$0] }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case syntax(String)
        case unset(String, String)

        public var description: String {
            switch self {
            case .syntax(let m): m
            case .unset(let name, let message): message.isEmpty ? "\(name): is not allowed to be unset" : "\(name): \(message)"
            }
        }
    }

    /// One word: quotes removed, variables substituted, whitespace kept.
    public func word(_ text: String) throws(Failure) -> String {
        try process(text, split: false).joined()
    }

    /// Words split at unquoted blanks (a substituted value is not split again, as Docker does).
    public func words(_ text: String) throws(Failure) -> [String] {
        try process(text, split: true)
    }

    func process(_ text: String, split: Bool) throws(Failure) -> [String] {
        let chars = Array(text)
        var i = 0
        var words: [String] = []
        var current = ""
        var inWord = false
        while i < chars.count {
            let c = chars[i]
            if split && (c == " " || c == "\t" || c == "\n") {
                if inWord { words.append(current); current = ""; inWord = false }
                i += 1
                continue
            }
            inWord = true
            if c == escape {
                if i + 1 < chars.count { current.append(chars[i + 1]); i += 2 } else { current.append(c); i += 1 }
            } else if c == "'" {
                i += 1
                while i < chars.count && chars[i] != "'" { current.append(chars[i]); i += 1 }
                guard i < chars.count else { throw .syntax("unexpected end of text: a single quote is not closed") }
                i += 1
            } else if c == "\"" {
                i += 1
                while i < chars.count && chars[i] != "\"" {
                    if chars[i] == escape, i + 1 < chars.count, chars[i + 1] == "\"" || chars[i + 1] == "$" || chars[i + 1] == escape {
                        current.append(chars[i + 1]); i += 2
                    } else if chars[i] == "$" {
                        current += try variable(chars, &i)
                    } else {
                        current.append(chars[i]); i += 1
                    }
                }
                guard i < chars.count else { throw .syntax("unexpected end of text: a double quote is not closed") }
                i += 1
            } else if c == "$" {
                current += try variable(chars, &i)
            } else {
                current.append(c)
                i += 1
            }
        }
        if inWord { words.append(current) }
        return words
    }

    static func isNameStart(_ c: Character) -> Bool { c == "_" || (c.isASCII && c.isLetter) }
    static func isName(_ c: Character) -> Bool { isNameStart(c) || (c.isASCII && c.isNumber) }

    /// At a `$`: the substituted text; `i` moves past the reference.
    func variable(_ chars: [Character], _ i: inout Int) throws(Failure) -> String {
        i += 1
        guard i < chars.count else { return "$" }
        if chars[i] != "{" {
            guard Substitution.isNameStart(chars[i]) else { return "$" }
            var name = ""
            while i < chars.count, Substitution.isName(chars[i]) { name.append(chars[i]); i += 1 }
            return lookup(name) ?? ""
        }
        i += 1
        var name = ""
        while i < chars.count, Substitution.isName(chars[i]) { name.append(chars[i]); i += 1 }
        guard !name.isEmpty else { throw .syntax("bad substitution: a variable name is missing after ${") }
        guard i < chars.count else { throw .syntax("missing '}' after ${\(name)") }
        if chars[i] == "}" { i += 1; return lookup(name) ?? "" }
        var colon = false
        if chars[i] == ":" { colon = true; i += 1 }
        guard i < chars.count else { throw .syntax("missing '}' after ${\(name)") }
        let op = chars[i]
        guard op == "-" || op == "+" || op == "?" else {
            throw .syntax("unsupported modifier (\(colon ? ":" : "")\(op)) in substitution ${\(name)…}")
        }
        i += 1
        // The word up to the matching brace, itself substituted.
        var depth = 1
        var raw = ""
        while i < chars.count {
            if chars[i] == escape, i + 1 < chars.count { raw.append(chars[i]); raw.append(chars[i + 1]); i += 2; continue }
            if chars[i] == "{" { depth += 1 }
            if chars[i] == "}" { depth -= 1; if depth == 0 { break } }
            raw.append(chars[i])
            i += 1
        }
        guard i < chars.count else { throw .syntax("missing '}' in substitution ${\(name)…") }
        i += 1
        let value = lookup(name)
        let isSet = colon ? !(value ?? "").isEmpty : value != nil
        switch op {
        case "-": return isSet ? (value ?? "") : try word(raw)
        case "+": return isSet ? try word(raw) : ""
        default:
            if isSet { return value ?? "" }
            throw .unset(name, try word(raw))
        }
    }
}
