import HakoSystem

/// A value in a configuration file.
public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)
    case array([ConfigValue])

    var kind: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number"
        case .bool: return "a boolean"
        case .array: return "an array"
        }
    }
}

/// The configuration files of the coordinator and the agent: the part of TOML
/// they need — `key = value` lines, `[table]` headers, `#` comments, strings
/// ("…" with \" \\ \n \t escapes, or '…'), integers, numbers, booleans and
/// one-line arrays. Keys inside a table are read as `table.key`.
public struct ConfigFile: Sendable {
    public private(set) var values: [String: ConfigValue] = [:]
    /// Where each key was set, for messages: "line 7".
    public private(set) var lines: [String: Int] = [:]

    public init() {}

    public init(parsing text: String) throws(ClusterError) {
        var table = ""
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = ConfigFile.stripComment(String(raw)).trimmed
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), !line.hasPrefix("[[") else {
                    throw .config(key: "line \(number)", reason: "a table header is [name]")
                }
                table = String(line.dropFirst().dropLast()).trimmed
                guard ConfigFile.isBareKey(table) else { throw .config(key: "line \(number)", reason: "invalid table name \"\(table)\"") }
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                throw .config(key: "line \(number)", reason: "expected key = value")
            }
            var key = String(line[..<eq]).trimmed
            if key.hasPrefix("\"") && key.hasSuffix("\"") && key.count >= 2 { key = String(key.dropFirst().dropLast()) }
            guard !key.isEmpty, !key.contains(" ") else { throw .config(key: "line \(number)", reason: "invalid key \"\(key)\"") }
            let full = table.isEmpty ? key : table + "." + key
            var rest = Substring(String(line[line.index(after: eq)...]).trimmed)
            let value = try ConfigFile.parseValue(&rest, key: full)
            guard rest.trimmed.isEmpty else { throw .config(key: full, reason: "unexpected text after the value: \(rest.trimmed)") }
            guard values[full] == nil else { throw .config(key: full, reason: "set twice (lines \(lines[full] ?? 0) and \(number))") }
            values[full] = value
            lines[full] = number
        }
    }

    public static func load(_ path: String) throws(ClusterError) -> ConfigFile {
        let text: String
        do { text = try FS.readString(path) } catch {
            throw .config(key: path, reason: "cannot read the file: \(error)")
        }
        return try ConfigFile(parsing: text)
    }

    static func isBareKey(_ s: String) -> Bool {
        !s.isEmpty && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") }
    }

    /// The line without a comment; a # inside a string stays.
    static func stripComment(_ line: String) -> String {
        var quote: Character?
        var escaped = false
        var out = ""
        for c in line {
            if let q = quote {
                if escaped { escaped = false } else if c == "\\" && q == "\"" { escaped = true } else if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "#" {
                break
            }
            out.append(c)
        }
        return out
    }

    static func parseValue(_ s: inout Substring, key: String) throws(ClusterError) -> ConfigValue {
        s = Substring(s.trimmed)
        guard let first = s.first else { throw .config(key: key, reason: "no value") }
        if first == "\"" || first == "'" {
            s.removeFirst()
            var out = ""
            while let c = s.first {
                s.removeFirst()
                if c == first { return .string(out) }
                if c == "\\" && first == "\"" {
                    guard let e = s.first else { break }
                    s.removeFirst()
                    switch e {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "\"": out.append("\"")
                    case "\\": out.append("\\")
                    default: throw .config(key: key, reason: "unknown escape \\\(e)")
                    }
                } else {
                    out.append(c)
                }
            }
            throw .config(key: key, reason: "unterminated string")
        }
        if first == "[" {
            s.removeFirst()
            var items: [ConfigValue] = []
            while true {
                s = Substring(s.trimmed)
                guard let c = s.first else { throw .config(key: key, reason: "unterminated array (arrays are on one line)") }
                if c == "]" { s.removeFirst(); return .array(items) }
                items.append(try parseValue(&s, key: key))
                s = Substring(s.trimmed)
                if s.first == "," { s.removeFirst() } else if s.first != "]" {
                    throw .config(key: key, reason: "expected , or ] in the array")
                }
            }
        }
        let end = s.firstIndex(where: { $0 == "," || $0 == "]" || $0 == " " || $0 == "\t" }) ?? s.endIndex
        let word = String(s[..<end]).replacingUnderscores()
        s = s[end...]
        if word == "true" { return .bool(true) }
        if word == "false" { return .bool(false) }
        if let i = Int64(word) { return .integer(i) }
        if let d = Double(word), d.isFinite { return .float(d) }
        throw .config(key: key, reason: "\"\(word)\" is not a value (strings need quotes)")
    }
}

extension String {
    /// TOML allows 1_000_000.
    fileprivate func replacingUnderscores() -> String {
        guard contains("_"), first?.isNumber == true || first == "-" || first == "+" else { return self }
        return String(filter { $0 != "_" })
    }
}

/// Reads typed settings out of a file; every key read is marked, and
/// `finish()` refuses the keys nobody asked for (a typo must not pass silently).
public struct ConfigReader {
    public let file: ConfigFile
    private var used: Set<String> = []
    /// Tables whose keys are free-form (labels).
    private var openTables: Set<String> = []

    public init(_ file: ConfigFile) { self.file = file }

    mutating func raw(_ key: String) -> ConfigValue? {
        used.insert(key)
        return file.values[key]
    }

    public mutating func string(_ key: String, default d: String) throws(ClusterError) -> String {
        guard let v = raw(key) else { return d }
        guard case .string(let s) = v else { throw .config(key: key, reason: "expected a string, found \(v.kind)") }
        return s
    }

    public mutating func strings(_ key: String, default d: [String]) throws(ClusterError) -> [String] {
        guard let v = raw(key) else { return d }
        guard case .array(let items) = v else { throw .config(key: key, reason: "expected an array of strings, found \(v.kind)") }
        var out: [String] = []
        for i in items {
            guard case .string(let s) = i else { throw .config(key: key, reason: "expected an array of strings, found \(i.kind) in it") }
            out.append(s)
        }
        return out
    }

    public mutating func integer(_ key: String, default d: Int, range: ClosedRange<Int>) throws(ClusterError) -> Int {
        guard let v = raw(key) else { return d }
        guard case .integer(let i) = v else { throw .config(key: key, reason: "expected an integer, found \(v.kind)") }
        guard let n = Int(exactly: i), range.contains(n) else {
            throw .config(key: key, reason: "\(i) is out of range (\(range.lowerBound)…\(range.upperBound))")
        }
        return n
    }

    public mutating func number(_ key: String, default d: Double, range: ClosedRange<Double>) throws(ClusterError) -> Double {
        guard let v = raw(key) else { return d }
        let x: Double
        switch v {
        case .integer(let i): x = Double(i)
        case .float(let f): x = f
        default: throw .config(key: key, reason: "expected a number, found \(v.kind)")
        }
        guard range.contains(x) else { throw .config(key: key, reason: "\(x) is out of range (\(range.lowerBound)…\(range.upperBound))") }
        return x
    }

    public mutating func bool(_ key: String, default d: Bool) throws(ClusterError) -> Bool {
        guard let v = raw(key) else { return d }
        guard case .bool(let b) = v else { throw .config(key: key, reason: "expected true or false, found \(v.kind)") }
        return b
    }

    /// "1s", "250ms", or a number of seconds.
    public mutating func duration(_ key: String, default d: Double, range: ClosedRange<Double>) throws(ClusterError) -> Double {
        guard let v = raw(key) else { return d }
        let x: Double
        switch v {
        case .string(let s):
            guard let parsed = Durations.parse(s) else { throw .config(key: key, reason: "\"\(s)\" is not a duration (e.g. \"500ms\", \"3s\", \"1h\")") }
            x = parsed
        case .integer(let i): x = Double(i)
        case .float(let f): x = f
        default: throw .config(key: key, reason: "expected a duration such as \"3s\", found \(v.kind)")
        }
        guard range.contains(x) else {
            throw .config(key: key, reason: "\(Durations.format(x)) is out of range (\(Durations.format(range.lowerBound))…\(Durations.format(range.upperBound)))")
        }
        return x
    }

    /// "512m", "1g", or a number of bytes.
    public mutating func bytes(_ key: String, default d: Int64) throws(ClusterError) -> Int64 {
        guard let v = raw(key) else { return d }
        switch v {
        case .string(let s):
            guard let b = ByteSize.parse(s.trimmed).flatMap({ Int64(exactly: $0) }) else { throw .config(key: key, reason: "\"\(s)\" is not a size (e.g. \"512m\", \"2g\")") }
            return b
        case .integer(let i) where i >= 0: return i
        default: throw .config(key: key, reason: "expected a size such as \"512m\", found \(v.kind)")
        }
    }

    /// Every `table.key = "value"` of a free-form table.
    public mutating func table(_ name: String) throws(ClusterError) -> [String: String] {
        openTables.insert(name)
        var out: [String: String] = [:]
        for (k, v) in file.values where k.hasPrefix(name + ".") {
            let sub = String(k.dropFirst(name.count + 1))
            switch v {
            case .string(let s): out[sub] = s
            case .integer(let i): out[sub] = String(i)
            case .bool(let b): out[sub] = String(b)
            default: throw .config(key: k, reason: "expected a string")
            }
        }
        return out
    }

    public func finish() throws(ClusterError) {
        for key in file.values.keys.sorted() where !used.contains(key) {
            if openTables.contains(where: { key.hasPrefix($0 + ".") }) { continue }
            throw .config(key: key, reason: "unknown setting (line \(file.lines[key] ?? 0))")
        }
    }
}
