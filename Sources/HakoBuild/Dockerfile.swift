import FoundationEssentials
import HakoSystem

/// A Dockerfile problem, pointing at its line: "Dockerfile:7: COPY failed: …".
public struct BuildError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String = "Dockerfile", line: Int, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

/// One instruction of a Dockerfile as written: its keyword (upper case), its
/// `--flags`, and its arguments, before variables are substituted.
public struct Instruction: Sendable, Equatable {
    public var keyword: String
    /// `--name=value` flags in order ("--link" alone has the value "").
    public var flags: [(name: String, value: String)]
    /// The text after the keyword and the flags, continuations joined.
    public var rest: String
    /// The JSON array when the arguments are one (exec form); nil for the shell form.
    public var json: [String]?
    /// The line the instruction starts on (1-based).
    public var line: Int
    /// The whole instruction as written (continuations joined), for history and messages.
    public var original: String

    public static func == (a: Instruction, b: Instruction) -> Bool {
        a.keyword == b.keyword && a.rest == b.rest && a.json == b.json && a.line == b.line && a.original == b.original
            && a.flags.map(\.name) == b.flags.map(\.name) && a.flags.map(\.value) == b.flags.map(\.value)
    }

    public func flag(_ name: String) -> String? { flags.last { $0.name == name }?.value }
}

/// A parsed Dockerfile: its instructions, the escape character, and notes
/// for the user (an ignored `# syntax` directive, empty continuation lines).
public struct Dockerfile: Sendable {
    public var instructions: [Instruction]
    public var escape: Character
    public var notes: [String]
    public var name: String

    static let keywords: Set<String> = [
        "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
        "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
    ]
    /// Instructions whose arguments may be a JSON array (exec form).
    static let jsonForms: Set<String> = ["RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"]
    /// Instructions that take `--flags` before their arguments.
    static let flagged: Set<String> = ["FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"]

    /// Parses Dockerfile text. `name` is what errors call the file.
    public static func parse(_ text: String, name: String = "Dockerfile") throws(BuildError) -> Dockerfile {
        // "\r\n" is one Character in Swift: both ends of line split.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map { line -> String in
            line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        }
        if let first = lines.first, first.hasPrefix("\u{FEFF}") { lines[0] = String(first.dropFirst()) }
        var escape: Character = "\\"
        var notes: [String] = []
        var index = 0
        // Parser directives: "# key=value" lines at the very top.
        var seen: Set<String> = []
        while index < lines.count, let d = directive(lines[index]) {
            let (key, value) = d
            if seen.contains(key) { throw BuildError(file: name, line: index + 1, "only one \(key) parser directive can be used") }
            seen.insert(key)
            switch key {
            case "escape":
                guard value == "\\" || value == "`" else {
                    throw BuildError(file: name, line: index + 1, "invalid escape token '\(value)' does not match ` or \\")
                }
                escape = Character(value)
            case "syntax":
                notes.append("\(name):\(index + 1): the syntax directive (\(value)) is ignored: hako builds with its own frontend")
            default: break
            }
            index += 1
        }

        var instructions: [Instruction] = []
        var pending: String? = nil
        var start = 0
        var emptyInContinuation = false
        while index < lines.count {
            let raw = lines[index]
            index += 1
            let trimmedLeading = raw.drop(while: { $0 == " " || $0 == "\t" })
            if trimmedLeading.hasPrefix("#") { continue }          // comments, also inside continuations
            if trimmedLeading.allSatisfy({ $0 == " " || $0 == "\t" }) {
                if pending != nil { emptyInContinuation = true }
                continue
            }
            var content = pending == nil ? String(trimmedLeading) : raw
            let (continued, body) = stripContinuation(content, escape: escape)
            content = body
            if pending == nil { start = index }
            pending = (pending ?? "") + content
            if continued { continue }
            instructions.append(try instruction(pending ?? "", line: start, file: name))
            pending = nil
        }
        if let p = pending {
            let text = p.trimmingWhitespace
            if !text.isEmpty { instructions.append(try instruction(text, line: start, file: name)) }
        }
        if emptyInContinuation {
            notes.append("\(name): empty continuation lines are deprecated (Docker warns the same)")
        }
        return Dockerfile(instructions: instructions, escape: escape, notes: notes, name: name)
    }

    /// A parser directive line: "# key=value" (key lower-cased), else nil.
    static func directive(_ line: String) -> (String, String)? {
        let t = line.trimmingWhitespace
        guard t.hasPrefix("#") else { return nil }
        let body = t.dropFirst().trimmingWhitespace
        guard let eq = body.firstIndex(of: "=") else { return nil }
        let key = body[..<eq].trimmingWhitespace.lowercased()
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else { return nil }
        guard ["syntax", "escape", "check"].contains(key) else { return nil }
        return (key, String(body[body.index(after: eq)...]).trimmingWhitespace)
    }

    /// Whether a line ends with the escape character (trailing blanks allowed), and the line without it.
    static func stripContinuation(_ line: String, escape: Character) -> (Bool, String) {
        var s = Substring(line)
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        if s.last == escape { return (true, String(s.dropLast())) }
        return (false, line)
    }

    static func instruction(_ text: String, line: Int, file: String) throws(BuildError) -> Instruction {
        let t = text.trimmingWhitespace
        let end = t.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? t.endIndex
        let keyword = t[..<end].uppercased()
        guard keywords.contains(keyword) else {
            throw BuildError(file: file, line: line, "unknown instruction: \(t[..<end])")
        }
        var rest = String(t[end...]).trimmingWhitespace
        var flags: [(String, String)] = []
        if flagged.contains(keyword) {
            while rest.hasPrefix("--") {
                let stop = rest.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? rest.endIndex
                let word = rest[rest.index(rest.startIndex, offsetBy: 2)..<stop]
                if word.isEmpty { break }
                if let eq = word.firstIndex(of: "=") {
                    flags.append((String(word[..<eq]), String(word[word.index(after: eq)...])))
                } else {
                    flags.append((String(word), ""))
                }
                rest = String(rest[stop...]).trimmingWhitespace
            }
        }
        var json: [String]? = nil
        if jsonForms.contains(keyword), rest.hasPrefix("[") {
            json = try? JSONDecoder().decode([String].self, from: Data(rest.utf8))
        }
        if keyword == "SHELL", json == nil {
            throw BuildError(file: file, line: line, "SHELL requires the arguments to be in JSON form")
        }
        return Instruction(keyword: keyword, flags: flags, rest: rest, json: json, line: line, original: t)
    }
}

extension StringProtocol {
    var trimmingWhitespace: String {
        let chars = Array(self)
        var a = 0, b = chars.count
        while a < b, chars[a] == " " || chars[a] == "\t" || chars[a] == "\r" || chars[a] == "\n" { a += 1 }
        while b > a, chars[b - 1] == " " || chars[b - 1] == "\t" || chars[b - 1] == "\r" || chars[b - 1] == "\n" { b -= 1 }
        return String(chars[a..<b])
    }
}
