/// A JSON value, parsed and printed without Foundation (RFC 8259).
///
/// Numbers keep their text so that 64-bit integers (memory limits, device
/// numbers) survive exactly; objects keep their member order.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y || (Double(x) != nil && Double(x) == Double(y))
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public static func int(_ v: Int64) -> JSON { .number(String(v)) }
    public static func uint(_ v: UInt64) -> JSON { .number(String(v)) }

    // MARK: - access

    public subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members.last { $0.0 == key }?.1 }
        return nil
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var members: [(String, JSON)]? { if case .object(let m) = self { return m }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    public var int64: Int64? {
        guard case .number(let t) = self else { return nil }
        if let v = Int64(t) { return v }
        // 1e3, 12.0: integral values written as floating point
        if let d = Double(t), d.rounded() == d, abs(d) < 9.2e18 { return Int64(d) }
        return nil
    }

    public var uint64: UInt64? {
        guard case .number(let t) = self else { return nil }
        if let v = UInt64(t) { return v }
        if let d = Double(t), d.rounded() == d, d >= 0, d < 1.8e19 { return UInt64(d) }
        return nil
    }

    public var double: Double? { if case .number(let t) = self { return Double(t) }; return nil }

    // MARK: - parsing

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var offset: Int
        public var reason: String
        public var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    public static func parse(_ text: String) throws -> JSON {
        try parse(Array(text.utf8))
    }

    /// Parses a whole document; at most `maxDepth` levels of nesting.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 512) throws -> JSON {
        var p = Parser(b: bytes, maxDepth: maxDepth)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.i != bytes.count { throw ParseError(offset: p.i, reason: "unexpected data after the value") }
        return v
    }

    private struct Parser {
        let b: [UInt8]
        let maxDepth: Int
        var i = 0

        init(b: [UInt8], maxDepth: Int) { self.b = b; self.maxDepth = maxDepth }

        func fail(_ reason: String) -> ParseError { ParseError(offset: i, reason: reason) }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 }
        }

        mutating func literal(_ word: String, _ v: JSON) throws -> JSON {
            let w = Array(word.utf8)
            guard i + w.count <= b.count, Array(b[i..<(i + w.count)]) == w else { throw fail("expected \(word)") }
            i += w.count
            return v
        }

        mutating func value(depth: Int) throws -> JSON {
            guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case UInt8(ascii: "n"): return try literal("null", .null)
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                i += 1
                var out: [JSON] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
                while true {
                    skipSpace()
                    out.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < b.count else { throw fail("unterminated array") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
                    throw fail("expected , or ] in array")
                }
            case UInt8(ascii: "{"):
                i += 1
                var out: [(String, JSON)] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
                while true {
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                    let key = try string()
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected : after a member name") }
                    i += 1
                    skipSpace()
                    out.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < b.count else { throw fail("unterminated object") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
                    throw fail("expected , or } in object")
                }
            default:
                return try number()
            }
        }

        mutating func number() throws -> JSON {
            let start = i
            func digits() -> Int {
                let s = i
                while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
                return i - s
            }
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count else { throw fail("expected a value") }
            if b[i] == UInt8(ascii: "0") { i += 1 } else if digits() == 0 { throw fail("expected a value") }
            if i < b.count, b[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { throw fail("expected digits after .") }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw fail("expected digits in the exponent") }
            }
            return .number(String(decoding: b[start..<i], as: UTF8.self))
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("bad \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c < 0x20 { throw fail("control character in a string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5c)
                case UInt8(ascii: "/"): out.append(0x2f)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("lone surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("bad code point") }
                    out += Array(String(Character(u)).utf8)
                default: throw fail("bad escape \\\(Character(Unicode.Scalar(e)))")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not UTF-8") }
            return s
        }
    }

    // MARK: - printing

    /// Compact JSON, or indented with two spaces per level when `pretty`.
    public func serialized(pretty: Bool = false) -> String {
        String(decoding: bytes(pretty: pretty), as: UTF8.self)
    }

    /// The same text as UTF-8 bytes. Written byte by byte: built as a String
    /// one scalar at a time, a container's 3 KB record cost ~0.5 M instructions.
    public func bytes(pretty: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        write(into: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(into out: inout [UInt8], pretty: Bool, indent: Int) {
        func newline(_ level: Int) {
            out.append(0x0a)
            out.append(contentsOf: repeatElement(0x20, count: 2 * level))
        }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let v): out.append(contentsOf: (v ? "true" : "false").utf8)
        case .number(let t): out.append(contentsOf: t.utf8)
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let a):
            if a.isEmpty { out.append(contentsOf: "[]".utf8); return }
            out.append(UInt8(ascii: "["))
            for (n, v) in a.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                if pretty { newline(indent + 1) }
                v.write(into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(indent) }
            out.append(UInt8(ascii: "]"))
        case .object(let m):
            if m.isEmpty { out.append(contentsOf: "{}".utf8); return }
            out.append(UInt8(ascii: "{"))
            for (n, (k, v)) in m.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                if pretty { newline(indent + 1) }
                JSON.quote(k, into: &out)
                out.append(UInt8(ascii: ":"))
                if pretty { out.append(0x20) }
                v.write(into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(indent) }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A string's JSON form, appended as UTF-8: `"`, `\` and control
    /// characters escaped, everything else as it is.
    /// - Parameter escapingHTML: also `<`, `>` and `&` as `\u` escapes, as Go's encoder
    ///   writes them (docker's `{{json .}}`), so output pastes into HTML safely.
    public static func quote(_ s: String, into out: inout [UInt8], escapingHTML: Bool = false) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0a: out.append(contentsOf: #"\n"#.utf8)
            case 0x0d: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case UInt8(ascii: "<") where escapingHTML: out.append(contentsOf: #"\u003c"#.utf8)
            case UInt8(ascii: ">") where escapingHTML: out.append(contentsOf: #"\u003e"#.utf8)
            case UInt8(ascii: "&") where escapingHTML: out.append(contentsOf: #"\u0026"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xf)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The same, appended to a String.
    public static func quote(_ s: String, into out: inout String, escapingHTML: Bool = false) {
        var bytes: [UInt8] = []
        quote(s, into: &bytes, escapingHTML: escapingHTML)
        out += String(decoding: bytes, as: UTF8.self)
    }
}
