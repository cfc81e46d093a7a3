import HakoSystem

/// The data a `--format` template reads: JSON's values, objects keeping their
/// keys' order. Made from the JSON the commands already print, so a template
/// sees the same names as `--format json` and `inspect` do.
public indirect enum TemplateValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([TemplateValue])
    case object(TemplateObject)

    public static func object(_ pairs: [(String, TemplateValue)]) -> TemplateValue {
        var o = TemplateObject()
        for (k, v) in pairs { o[k] = v }
        return .object(o)
    }

    /// Go's truth: false, 0, "", nil and empty collections are false.
    var isTrue: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.keys.isEmpty
        }
    }

    /// As Go's fmt prints a value with %v.
    public var text: String {
        switch self {
        case .null: return "<no value>"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return TemplateValue.format(d)
        case .string(let s): return s
        case .array(let a): return "[" + a.map(\.text).joined(separator: " ") + "]"
        case .object(let o): return "map[" + o.keys.sorted().map { "\($0):\(o[$0]?.text ?? "")" }.joined(separator: " ") + "]"
        }
    }

    static func format(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e21 { return String(Int64(d)) }
        return String(d)
    }

    /// Compact JSON, keys in their order.
    public var json: String {
        switch self {
        case .null: return "null"
        case .bool, .int: return text
        case .double(let d): return d.isFinite ? TemplateValue.format(d) : "null"
        case .string(let s): return TemplateValue.quote(s)
        case .array(let a): return "[" + a.map(\.json).joined(separator: ",") + "]"
        case .object(let o): return "{" + o.keys.map { TemplateValue.quote($0) + ":" + (o[$0]?.json ?? "null") }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = ""
        JSON.quote(s, into: &out, escapingHTML: true)
        return out
    }
}

/// A JSON object: its values by key, and the keys in order.
public struct TemplateObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    private var values: [String: TemplateValue] = [:]

    public init() {}

    public subscript(key: String) -> TemplateValue? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { $0 == key } }
            values[key] = newValue
        }
    }
}

extension TemplateValue {
    /// Parses JSON text (RFC 8259) with hako's one JSON parser (`HakoSystem.JSON`).
    public init(json text: String) throws {
        let parsed: JSON
        do {
            parsed = try JSON.parse(text)
        } catch {
            throw TemplateError(line: 0, column: 0, message: "JSON: \(error)")
        }
        self.init(parsed)
    }

    /// A JSON value as a template reads it: integers as integers, other numbers as doubles.
    public init(_ json: JSON) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let t):
            if let i = Int64(t) { self = .int(i) } else { self = .double(Double(t) ?? 0) }
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(TemplateValue.init))
        case .object(let members): self = .object(members.map { ($0.0, TemplateValue($0.1)) })
        }
    }
}
