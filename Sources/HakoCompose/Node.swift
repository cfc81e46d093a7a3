import HakoSystem

/// A Compose problem: the file, the line (when one is to blame) and what is wrong.
public struct ComposeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if file.isEmpty { return message }
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// Where a value was written.
public struct SourceLocation: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var description: String { "\(file):\(line)" }
}

/// A node being read as Compose: its path ("services.web.ports[1]") for messages.
struct Field {
    let node: YAMLNode
    let path: String
    let file: String
    /// The line to blame: a mapping value's key's, else the node's own.
    let line: Int

    init(node: YAMLNode, path: String, file: String, line: Int? = nil) {
        self.node = node
        self.path = path
        self.file = file
        self.line = line ?? node.line
    }

    var location: SourceLocation { SourceLocation(file: file, line: line) }

    func fail(_ message: String) -> ComposeError { ComposeError(file: file, line: line, path.isEmpty ? message : "\(path): \(message)") }

    var scalar: YAMLScalar? {
        if case .scalar(let s) = node.value { return s }
        return nil
    }

    var isNull: Bool { scalar?.isNull ?? false }

    private var kindName: String {
        switch node.value {
        case .scalar(let s): return s.isNull ? "null" : "\"\(s.text)\""
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    /// Any non-null scalar's text (numbers and booleans as written).
    func string() throws(ComposeError) -> String {
        guard let s = scalar, !s.isNull else { throw fail("expected a string, got \(kindName)") }
        return s.text
    }

    func int(in range: ClosedRange<Int> = 0...Int(Int32.max)) throws(ComposeError) -> Int {
        guard let s = scalar, !s.isNull, let v = Int(s.text), range.contains(v) else {
            throw fail("expected an integer from \(range.lowerBound) to \(range.upperBound), got \(kindName)")
        }
        return v
    }

    func double() throws(ComposeError) -> Double {
        guard let s = scalar, !s.isNull, let v = Double(s.text.trimmingSpaces), v.isFinite, v >= 0 else {
            throw fail("expected a non-negative number, got \(kindName)")
        }
        return v
    }

    /// YAML 1.1's booleans, as the Go YAML library Docker uses reads them.
    func bool() throws(ComposeError) -> Bool {
        if let s = scalar, !s.isNull {
            switch s.text {
            case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y": return true
            case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N": return false
            default: break
            }
        }
        throw fail("expected true or false, got \(kindName)")
    }

    /// Go's duration syntax ("1m30s"), in seconds.
    func duration() throws(ComposeError) -> Double {
        let s = try string()
        guard let v = GoDuration.seconds(s), v >= 0 else { throw fail("invalid duration \"\(s)\" (e.g. 10s, 1m30s, 500ms)") }
        return v
    }

    /// Bytes from "512m", "1.5gb", "64MiB" or an integer.
    func bytes() throws(ComposeError) -> Int64 {
        let s = try string()
        guard let v = ByteSize.parse(s.trimmingSpaces), let b = Int64(exactly: v) else { throw fail("invalid size \"\(s)\" (e.g. 512m, 1g, 64MiB)") }
        return b
    }

    func list() throws(ComposeError) -> [Field] {
        guard case .sequence(let items) = node.value else { throw fail("expected a list, got \(kindName)") }
        return items.enumerated().map { Field(node: $1, path: "\(path)[\($0)]", file: file) }
    }

    func stringList() throws(ComposeError) -> [String] {
        var out: [String] = []
        for f in try list() { out.append(try f.string()) }
        return out
    }

    /// A string or a list of strings.
    func stringOrList() throws(ComposeError) -> [String] {
        if case .sequence = node.value { return try stringList() }
        return [try string()]
    }

    /// A command: a list as is, a string split as a shell splits words.
    func command() throws(ComposeError) -> [String] {
        if case .sequence = node.value { return try stringList() }
        let s = try string()
        do throws(ShellWords.Failure) { return try ShellWords.split(s) } catch { throw fail(error.message) }
    }

    /// Pairs of a mapping, keys as strings.
    func pairs() throws(ComposeError) -> [(key: String, field: Field)] {
        guard case .mapping(let ps) = node.value else { throw fail("expected a mapping, got \(kindName)") }
        var out: [(key: String, field: Field)] = []
        for p in ps {
            guard case .scalar(let k) = p.key.value else { throw ComposeError(file: file, line: p.key.line, "\(path): keys must be strings") }
            out.append((k.text, Field(node: p.value, path: path.isEmpty ? k.text : "\(path).\(k.text)", file: file, line: p.key.line)))
        }
        return out
    }

    /// `KEY: value` mappings or `KEY=value` lists (labels, environment,
    /// sysctls, driver options). A null value (`KEY:` or a bare `KEY` in a
    /// list) is nil.
    func stringMap() throws(ComposeError) -> [(key: String, value: String?, field: Field)] {
        switch node.value {
        case .mapping:
            return try pairs().map { p throws(ComposeError) in (p.key, p.field.isNull ? nil : try p.field.string(), p.field) }
        case .sequence:
            return try list().map { f throws(ComposeError) in
                let s = try f.string()
                let kv = s.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let k = kv.first, !k.isEmpty else { throw f.fail("expected KEY=VALUE, got \"\(s)\"") }
                return (String(k), kv.count > 1 ? String(kv[1]) : nil, f)
            }
        case .scalar:
            throw fail("expected a mapping or a list of KEY=VALUE, got \(kindName)")
        }
    }
}
