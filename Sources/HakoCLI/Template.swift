/// A template error, at a line and column of the template (1-based).
public struct TemplateError: Error, CustomStringConvertible, Equatable {
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String { line > 0 ? "template: \(line):\(column): \(message)" : "template: \(message)" }
}

/// Go's text/template as docker's `--format` uses it, over a `TemplateValue`:
/// `{{.Field.Sub}}`, `{{$}}`, variables (`{{$x := .A}}`), pipelines
/// (`{{.Names | upper}}`), parenthesised calls, `if`/`else if`/`else`,
/// `range` (with `$i, $e :=`, `else`, `break` and `continue`), `with`,
/// named templates (`define`, `template`, `block`), comments, `{{-`/`-}}`
/// trimming, and the functions docker adds (`json`, `join`, `split`, `lower`,
/// `upper`, `title`, `pad`, `truncate`) next to Go's (`index`, `slice`,
/// `len`, `printf`, `print`, `println`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`,
/// `and` and `or` — which stop at the first operand that decides, as Go's
/// do —, `not`, `html`, `js`, `urlquery`). Errors name the line and column.
public struct Template: Sendable {
    let nodes: [TemplateNode]
    /// The templates `{{define}}` and `{{block}}` name, by name.
    let definitions: [String: [TemplateNode]]

    public init(_ source: String) throws {
        var p = TemplateParser(tokens: try TemplateLexer.tokens(source))
        nodes = try p.parseList(until: [])
        definitions = p.definitions
    }

    public func render(_ value: TemplateValue) throws -> String {
        var scope = TemplateScope(variables: [("$", value)], definitions: definitions)
        var out = ""
        try TemplateScope.run(nodes, dot: value, scope: &scope, into: &out)
        return out
    }
}

// MARK: - lexing

struct Position: Sendable, Equatable {
    var line: Int
    var column: Int

    func error(_ m: String) -> TemplateError { TemplateError(line: line, column: column, message: m) }
}

enum TemplateToken: Sendable, Equatable {
    case text(String)
    /// The inside of one {{ }}, its words, at the position of its first character.
    case action([Word], Position)
}

struct Word: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case field([String])          // .A.B ("." alone: [])
        case variable(String, [String])  // $x.A
        case string(String)
        case number(String)
        case identifier(String)       // a function name, true, false, nil, if, range …
        case pipe, open, close, declare, assign, comma
    }
    var kind: Kind
    var position: Position
}

enum TemplateLexer {
    static func tokens(_ source: String) throws -> [TemplateToken] {
        let s = Array(source.unicodeScalars)
        var out: [TemplateToken] = []
        var i = 0, line = 1, column = 1
        var text = ""
        func advance(_ n: Int = 1) {
            for _ in 0..<n where i < s.count {
                if s[i] == "\n" { line += 1; column = 1 } else { column += 1 }
                i += 1
            }
        }
        func at(_ k: Int, _ c: Unicode.Scalar) -> Bool { k < s.count && s[k] == c }
        while i < s.count {
            guard at(i, "{"), at(i + 1, "{") else {
                text.unicodeScalars.append(s[i])
                advance()
                continue
            }
            let start = Position(line: line, column: column)
            advance(2)
            // "{{- " trims the space before.
            if at(i, "-"), i + 1 < s.count, s[i + 1].properties.isWhitespace {
                while let last = text.unicodeScalars.last, last.properties.isWhitespace { text.unicodeScalars.removeLast() }
                advance()
            }
            if !text.isEmpty { out.append(.text(text)); text = "" }
            var words: [Word] = []
            var trimAfter = false
            var closed = false
            while i < s.count {
                let c = s[i]
                let pos = Position(line: line, column: column)
                if c.properties.isWhitespace {
                    // " -}}" trims the space after.
                    if at(i + 1, "-"), at(i + 2, "}"), at(i + 3, "}") { trimAfter = true; advance(4); closed = true; break }
                    advance()
                    continue
                }
                if c == "}" {
                    guard at(i + 1, "}") else { throw pos.error("unexpected \"}\" in command") }
                    advance(2)
                    closed = true
                    break
                }
                if c == "/" && at(i + 1, "*") {
                    // A comment: {{/* … */}}, alone in its action.
                    advance(2)
                    while i < s.count && !(at(i, "*") && at(i + 1, "/")) { advance() }
                    guard i < s.count else { throw start.error("unclosed comment") }
                    advance(2)
                    continue
                }
                switch c {
                case "|": words.append(Word(kind: .pipe, position: pos)); advance()
                case "(": words.append(Word(kind: .open, position: pos)); advance()
                case ")": words.append(Word(kind: .close, position: pos)); advance()
                case ",": words.append(Word(kind: .comma, position: pos)); advance()
                case ":":
                    guard at(i + 1, "=") else { throw pos.error("expected :=") }
                    words.append(Word(kind: .declare, position: pos)); advance(2)
                case "=": words.append(Word(kind: .assign, position: pos)); advance()
                case "\"", "`":
                    advance()
                    var v = ""
                    while true {
                        guard i < s.count, s[i] != "\n" || c == "`" else { throw pos.error("unterminated quoted string") }
                        let d = s[i]
                        advance()
                        if d == c { break }
                        if d == "\\" && c == "\"" {
                            guard i < s.count else { throw pos.error("unterminated quoted string") }
                            let e = s[i]
                            advance()
                            switch e {
                            case "n": v += "\n"
                            case "t": v += "\t"
                            case "r": v += "\r"
                            case "\\": v += "\\"
                            case "\"": v += "\""
                            default: throw pos.error("unknown escape sequence \\\(e) in string")
                            }
                            continue
                        }
                        v.unicodeScalars.append(d)
                    }
                    words.append(Word(kind: .string(v), position: pos))
                case "'":
                    // A character constant: its code, as Go has it.
                    guard i + 2 < s.count, s[i + 2] == "'" else { throw pos.error("malformed character constant") }
                    words.append(Word(kind: .number(String(s[i + 1].value)), position: pos))
                    advance(3)
                default:
                    var v = ""
                    while i < s.count, isWordScalar(s[i]) {
                        v.unicodeScalars.append(s[i])
                        advance()
                    }
                    guard !v.isEmpty else { throw pos.error("unexpected \"\(c)\" in command") }
                    words.append(try word(v, pos))
                }
            }
            guard closed else { throw start.error("unclosed action") }
            out.append(.action(words, start))
            if trimAfter {
                while i < s.count, s[i].properties.isWhitespace { advance() }
            }
        }
        if !text.isEmpty { out.append(.text(text)) }
        return out
    }

    static func isWordScalar(_ c: Unicode.Scalar) -> Bool {
        c.properties.isAlphabetic || c.properties.numericType != nil || c == "_" || c == "." || c == "$" || c == "-" || c == "+"
    }

    static func word(_ v: String, _ pos: Position) throws -> Word {
        if v.hasPrefix(".") {
            let parts = v.split(separator: ".", omittingEmptySubsequences: false).dropFirst().map(String.init)
            if v == "." { return Word(kind: .field([]), position: pos) }
            guard parts.allSatisfy({ !$0.isEmpty }) else { throw pos.error("bad field \"\(v)\"") }
            return Word(kind: .field(parts), position: pos)
        }
        if v.hasPrefix("$") {
            let parts = v.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard parts.dropFirst().allSatisfy({ !$0.isEmpty }) else { throw pos.error("bad variable \"\(v)\"") }
            return Word(kind: .variable(parts[0], Array(parts.dropFirst())), position: pos)
        }
        if let f = v.unicodeScalars.first, f == "-" || f == "+" || f.properties.numericType != nil {
            return Word(kind: .number(v), position: pos)
        }
        return Word(kind: .identifier(v), position: pos)
    }
}

// MARK: - parsing

indirect enum Operand: Sendable {
    case field([String])
    case variable(String, [String])
    case literal(TemplateValue)
    case function(String)
    /// A parenthesised pipeline, and fields read from its result: (index .A 0).B
    case pipeline(Pipeline, [String])
}

struct Command: Sendable {
    var operands: [(Operand, Position)]
}

struct Pipeline: Sendable {
    /// $x := or $i, $e := (declare), $x = (assign).
    var variables: [String] = []
    var declares = true
    var commands: [Command] = []
    var position: Position
}

indirect enum TemplateNode: Sendable {
    case text(String)
    case action(Pipeline)
    case conditional(Pipeline, [TemplateNode], [TemplateNode])
    case range(Pipeline, [TemplateNode], [TemplateNode])
    case with(Pipeline, [TemplateNode], [TemplateNode])
    /// {{template "name" pipeline}} (and the call a {{block}} makes).
    case invoke(String, Pipeline?, Position)
    case breakLoop
    case continueLoop
}

struct TemplateParser {
    let tokens: [TemplateToken]
    var i = 0
    var definitions: [String: [TemplateNode]] = [:]
    /// How many {{range}}s enclose the current node: {{break}} and {{continue}} need one.
    var rangeDepth = 0
    /// Nesting of lists: {{define}} is allowed at the top level alone, as in Go.
    var listDepth = 0

    init(tokens: [TemplateToken]) { self.tokens = tokens }

    static let functions: Set<String> = ["json", "join", "split", "lower", "upper", "title", "pad", "truncate", "index", "len",
                                         "printf", "print", "println", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "slice",
                                         "html", "js", "urlquery"]

    /// Nodes up to one of the `until` keywords (end, else), which is left for the caller.
    mutating func parseList(until: Set<String>) throws -> [TemplateNode] {
        listDepth += 1
        defer { listDepth -= 1 }
        var out: [TemplateNode] = []
        while i < tokens.count {
            switch tokens[i] {
            case .text(let t):
                out.append(.text(t))
                i += 1
            case .action(let words, let pos):
                if words.isEmpty { i += 1; continue }  // a comment
                if case .identifier(let k) = words[0].kind, k == "end" || k == "else" {
                    guard until.contains(k) else { throw pos.error("unexpected {{\(k)}}") }
                    return out
                }
                i += 1
                if case .identifier(let k) = words[0].kind, ["if", "range", "with"].contains(k) {
                    out.append(try control(k, Array(words.dropFirst()), pos))
                } else if case .identifier("define") = words[0].kind {
                    guard listDepth == 1 && until.isEmpty else { throw pos.error("{{define}} inside another action: define templates at the top level") }
                    let name = try templateName("define", words, pos)
                    guard words.count == 2 else { throw pos.error("unexpected words after {{define \"\(name)\"}}") }
                    try define(name, try body("define", pos), pos)
                } else if case .identifier("block") = words[0].kind {
                    let name = try templateName("block", words, pos)
                    guard words.count > 2 else { throw pos.error("missing pipeline in {{block \"\(name)\"}}") }
                    let p = try pipeline(Array(words.dropFirst(2)), pos)
                    try define(name, try body("block", pos), pos)
                    out.append(.invoke(name, p, pos))
                } else if case .identifier("template") = words[0].kind {
                    let name = try templateName("template", words, pos)
                    out.append(.invoke(name, words.count > 2 ? try pipeline(Array(words.dropFirst(2)), pos) : nil, pos))
                } else if case .identifier(let k) = words[0].kind, k == "break" || k == "continue" {
                    guard rangeDepth > 0 else { throw pos.error("{{\(k)}} outside {{range}}") }
                    guard words.count == 1 else { throw pos.error("unexpected words after {{\(k)}}") }
                    out.append(k == "break" ? .breakLoop : .continueLoop)
                } else {
                    out.append(.action(try pipeline(words, pos)))
                }
            }
        }
        if !until.isEmpty { throw lastPosition.error("unexpected EOF: missing {{end}}") }
        return out
    }

    /// Go's integer literals: decimal, 0x hex, 0o or leading-0 octal, 0b
    /// binary, a sign, digits grouped with "_" (1_000).
    static func integer(_ literal: String) -> Int64? {
        var body = Substring(literal)
        var negative = false
        if let sign = body.first, sign == "+" || sign == "-" { negative = sign == "-"; body = body.dropFirst() }
        guard !body.hasPrefix("_"), !body.hasSuffix("_"), !body.contains("__") else { return nil }
        var radix = 10
        let lower = body.lowercased()
        if lower.hasPrefix("0x") { radix = 16; body = body.dropFirst(2) }
        else if lower.hasPrefix("0o") { radix = 8; body = body.dropFirst(2) }
        else if lower.hasPrefix("0b") { radix = 2; body = body.dropFirst(2) }
        else if body.count > 1, body.hasPrefix("0"), body.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "_") }) { radix = 8; body = body.dropFirst() }
        let digits = String(body.drop { $0 == "_" }.filter { $0 != "_" })
        guard !digits.isEmpty, let magnitude = UInt64(digits, radix: radix) else { return nil }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// The quoted name after define, block and template.
    func templateName(_ keyword: String, _ words: [Word], _ pos: Position) throws -> String {
        guard words.count > 1, case .string(let name) = words[1].kind else {
            throw pos.error("{{\(keyword)}} needs a template name in quotes")
        }
        return name
    }

    /// The list of a define or block up to its {{end}}, which it consumes.
    /// A named template is a template of its own: no {{range}} encloses it.
    mutating func body(_ keyword: String, _ pos: Position) throws -> [TemplateNode] {
        let enclosing = rangeDepth
        rangeDepth = 0
        defer { rangeDepth = enclosing }
        let nodes = try parseList(until: ["end"])
        guard i < tokens.count, case .action(let e, let at) = tokens[i], case .identifier("end") = e[0].kind else {
            throw pos.error("missing {{end}} of {{\(keyword)}}")
        }
        guard e.count == 1 else { throw at.error("unexpected words after {{end}}") }
        i += 1
        return nodes
    }

    /// Go's rule: a name defined twice is an error, unless one of the two is empty
    /// (only spaces), which the other replaces.
    mutating func define(_ name: String, _ nodes: [TemplateNode], _ pos: Position) throws {
        func empty(_ n: [TemplateNode]) -> Bool {
            n.allSatisfy { if case .text(let t) = $0 { return t.allSatisfy(\.isWhitespace) } else { return false } }
        }
        if let old = definitions[name], !empty(old) {
            guard empty(nodes) else { throw pos.error("template: multiple definition of template \"\(name)\"") }
            return
        }
        definitions[name] = nodes
    }

    var lastPosition: Position {
        for t in tokens.reversed() { if case .action(_, let p) = t { return p } }
        return Position(line: 1, column: 1)
    }

    /// if/range/with PIPELINE … [{{else}} …] {{end}}; `else if` and `else with` chain.
    mutating func control(_ keyword: String, _ words: [Word], _ pos: Position) throws -> TemplateNode {
        guard !words.isEmpty else { throw pos.error("missing value for \(keyword)") }
        let p = try pipeline(words, pos)
        if keyword == "range" { rangeDepth += 1 }
        let body = try parseList(until: ["end", "else"])
        if keyword == "range" { rangeDepth -= 1 }
        var otherwise: [TemplateNode] = []
        guard case .action(let w, let at) = tokens[i], case .identifier(let k) = w[0].kind else { throw pos.error("missing {{end}}") }
        i += 1
        if k == "else" {
            if w.count > 1, case .identifier(let chained) = w[1].kind, chained == "if" || chained == "with", keyword == chained {
                // {{else if …}}: the rest is one more conditional, which consumes the {{end}}.
                otherwise = [try control(chained, Array(w.dropFirst(2)), at)]
                return node(keyword, p, body, otherwise)
            }
            guard w.count == 1 else { throw at.error("unexpected words after {{else}}") }
            otherwise = try parseList(until: ["end"])
            guard case .action(let e, _) = tokens[i], case .identifier("end") = e[0].kind else { throw pos.error("missing {{end}}") }
            i += 1
        }
        return node(keyword, p, body, otherwise)
    }

    func node(_ k: String, _ p: Pipeline, _ a: [TemplateNode], _ b: [TemplateNode]) -> TemplateNode {
        switch k {
        case "if": return .conditional(p, a, b)
        case "range": return .range(p, a, b)
        default: return .with(p, a, b)
        }
    }

    func pipeline(_ words: [Word], _ pos: Position) throws -> Pipeline {
        var p = Pipeline(position: pos)
        var w = words[...]
        // Variables: $x := …, $i, $e := …, $x = …
        if case .variable(let v, let f) = w.first?.kind, f.isEmpty {
            var names = [v]
            var rest = w.dropFirst()
            if case .comma = rest.first?.kind, case .variable(let v2, let f2) = rest.dropFirst().first?.kind, f2.isEmpty {
                names.append(v2)
                rest = rest.dropFirst(2)
            }
            if let op = rest.first, op.kind == .declare || op.kind == .assign {
                p.variables = names
                p.declares = op.kind == .declare
                w = rest.dropFirst()
            }
        }
        var command = Command(operands: [])
        while let word = w.first {
            w = w.dropFirst()
            switch word.kind {
            case .pipe:
                guard !command.operands.isEmpty else { throw word.position.error("missing command before |") }
                p.commands.append(command)
                command = Command(operands: [])
            case .open:
                // Up to the matching ")".
                var depth = 1
                var inner: [Word] = []
                var closing: Position?
                while let x = w.first {
                    w = w.dropFirst()
                    if x.kind == .open { depth += 1 }
                    if x.kind == .close { depth -= 1; if depth == 0 { closing = x.position; break } }
                    inner.append(x)
                }
                guard let closing else { throw word.position.error("unclosed left paren") }
                guard !inner.isEmpty else { throw word.position.error("missing command in parentheses") }
                // (index .A 0).Field: fields read from the result, written right after the ")".
                var after: [String] = []
                if let next = w.first, case .field(let f) = next.kind, !f.isEmpty,
                   next.position.line == closing.line, next.position.column == closing.column + 1 {
                    after = f
                    w = w.dropFirst()
                }
                command.operands.append((.pipeline(try pipeline(inner, word.position), after), word.position))
            case .close: throw word.position.error("unexpected right paren")
            case .comma, .declare, .assign: throw word.position.error("unexpected \(word.kind) in command")
            case .field(let f): command.operands.append((.field(f), word.position))
            case .variable(let v, let f): command.operands.append((.variable(v, f), word.position))
            case .string(let s): command.operands.append((.literal(.string(s)), word.position))
            case .number(let n):
                if let v = TemplateParser.integer(n) { command.operands.append((.literal(.int(v)), word.position)) }
                else if !n.contains("__"), !n.hasSuffix("_"), let d = Double(String(n.filter { $0 != "_" })) {
                    command.operands.append((.literal(.double(d)), word.position))
                }
                else { throw word.position.error("bad number syntax: \"\(n)\"") }
            case .identifier(let id):
                switch id {
                case "true": command.operands.append((.literal(.bool(true)), word.position))
                case "false": command.operands.append((.literal(.bool(false)), word.position))
                case "nil": command.operands.append((.literal(.null), word.position))
                default:
                    guard TemplateParser.functions.contains(id) else { throw word.position.error("function \"\(id)\" not defined") }
                    command.operands.append((.function(id), word.position))
                }
            }
        }
        guard !command.operands.isEmpty else { throw pos.error(p.commands.isEmpty ? "missing value for command" : "missing command after |") }
        p.commands.append(command)
        return p
    }

}

// MARK: - execution

/// How {{break}} and {{continue}} leave the list they are in, up to their {{range}}.
enum LoopControl: Error { case breakLoop, continueLoop }

struct TemplateScope {
    var variables: [(String, TemplateValue)]
    let definitions: [String: [TemplateNode]]
    /// Named templates being run, one inside another (a template may call itself).
    var depth = 0
    static let maxDepth = 1000

    func lookup(_ name: String, _ pos: Position) throws -> TemplateValue {
        guard let v = variables.last(where: { $0.0 == name }) else { throw pos.error("undefined variable \"\(name)\"") }
        return v.1
    }

    static func run(_ nodes: [TemplateNode], dot: TemplateValue, scope: inout TemplateScope, into out: inout String) throws {
        for n in nodes {
            switch n {
            case .text(let t):
                out += t
            case .action(let p):
                let v = try evaluate(p, dot: dot, scope: &scope)
                if p.variables.isEmpty { out += v.text }
            case .conditional(let p, let a, let b):
                let mark = scope.variables.count
                let v = try evaluate(p, dot: dot, scope: &scope)
                try run(v.isTrue ? a : b, dot: dot, scope: &scope, into: &out)
                scope.variables.removeSubrange(mark...)
            case .with(let p, let a, let b):
                let mark = scope.variables.count
                let v = try evaluate(p, dot: dot, scope: &scope)
                try run(v.isTrue ? a : b, dot: v.isTrue ? v : dot, scope: &scope, into: &out)
                scope.variables.removeSubrange(mark...)
            case .range(var p, let a, let b):
                let mark = scope.variables.count
                let names = p.variables
                p.variables = []
                let v = try evaluate(p, dot: dot, scope: &scope)
                var items: [(TemplateValue, TemplateValue)] = []
                switch v {
                case .array(let arr): items = arr.enumerated().map { (.int(Int64($0.offset)), $0.element) }
                case .object(let o): items = o.keys.sorted().map { (.string($0), o[$0] ?? .null) }
                case .int(let n): items = (0..<max(0, n)).map { (.int($0), .int($0)) }
                case .null: items = []
                default: throw p.position.error("range can't iterate over \(v.text)")
                }
                if items.isEmpty { try run(b, dot: dot, scope: &scope, into: &out) }
                loop: for (k, e) in items {
                    let inner = scope.variables.count
                    if names.count == 1 { scope.variables.append((names[0], e)) }
                    if names.count == 2 { scope.variables.append((names[0], k)); scope.variables.append((names[1], e)) }
                    var stop = false
                    do {
                        try run(a, dot: e, scope: &scope, into: &out)
                    } catch LoopControl.continueLoop {
                    } catch LoopControl.breakLoop {
                        stop = true
                    }
                    scope.variables.removeSubrange(inner...)
                    if stop { break loop }
                }
                scope.variables.removeSubrange(mark...)
            case .invoke(let name, let p, let pos):
                guard let body = scope.definitions[name] else { throw pos.error("template \"\(name)\" not defined") }
                guard scope.depth < maxDepth else { throw pos.error("exceeded maximum template depth (\(maxDepth))") }
                let v = try p.map { try evaluate($0, dot: dot, scope: &scope) } ?? .null
                // A named template sees its argument as both . and $, and none of the caller's variables.
                var inner = TemplateScope(variables: [("$", v)], definitions: scope.definitions, depth: scope.depth + 1)
                try run(body, dot: v, scope: &inner, into: &out)
            case .breakLoop:
                throw LoopControl.breakLoop
            case .continueLoop:
                throw LoopControl.continueLoop
            }
        }
    }

    static func evaluate(_ p: Pipeline, dot: TemplateValue, scope: inout TemplateScope) throws -> TemplateValue {
        var result: TemplateValue?
        for c in p.commands {
            result = try call(c, dot: dot, scope: &scope, piped: result)
        }
        let v = result ?? .null
        if !p.variables.isEmpty {
            if p.declares {
                scope.variables.append((p.variables[0], v))
            } else {
                guard let i = scope.variables.lastIndex(where: { $0.0 == p.variables[0] }) else {
                    throw p.position.error("undefined variable \"\(p.variables[0])\"")
                }
                scope.variables[i].1 = v
            }
        }
        return v
    }

    static func call(_ c: Command, dot: TemplateValue, scope: inout TemplateScope, piped: TemplateValue?) throws -> TemplateValue {
        let (first, pos) = c.operands[0]
        if case .function(let name) = first, name == "and" || name == "or" {
            // Go's and/or evaluate their operands in order and stop at the first
            // that decides: {{if and .A (index .A 0)}} never indexes an empty .A.
            let operands = c.operands.dropFirst()
            guard !operands.isEmpty || piped != nil else { throw pos.error("wrong number of args for \(name): want at least 1 got 0") }
            var last = TemplateValue.null
            for (o, p) in operands {
                last = try operand(o, p, dot: dot, scope: &scope)
                if last.isTrue != (name == "and") { return last }
            }
            return piped ?? last
        }
        if case .function(let name) = first {
            var args: [TemplateValue] = []
            for (o, p) in c.operands.dropFirst() { args.append(try operand(o, p, dot: dot, scope: &scope)) }
            if let piped { args.append(piped) }
            return try TemplateFunctions.call(name, args, pos)
        }
        guard c.operands.count == 1, piped == nil else {
            throw pos.error("can't give argument to non-function \(describe(first))")
        }
        return try operand(first, pos, dot: dot, scope: &scope)
    }

    static func describe(_ o: Operand) -> String {
        switch o {
        case .field(let f): return "." + f.joined(separator: ".")
        case .variable(let v, let f): return ([v] + f).joined(separator: ".")
        case .literal(let v): return v.json
        case .function(let n): return n
        case .pipeline: return "(…)"
        }
    }

    static func operand(_ o: Operand, _ pos: Position, dot: TemplateValue, scope: inout TemplateScope) throws -> TemplateValue {
        switch o {
        case .field(let f): return try fields(dot, f, pos)
        case .variable(let v, let f): return try fields(try scope.lookup(v, pos), f, pos)
        case .literal(let v): return v
        case .function(let n): return try TemplateFunctions.call(n, [], pos)
        case .pipeline(let p, let f): return try fields(try evaluate(p, dot: dot, scope: &scope), f, pos)
        }
    }

    static func fields(_ v: TemplateValue, _ path: [String], _ pos: Position) throws -> TemplateValue {
        var cur = v
        for (n, name) in path.enumerated() {
            switch cur {
            case .object(let o):
                guard let next = o[name] else {
                    // A field the row does not have is a mistake in the template (Go's
                    // error for a struct); below it, maps answer <no value>.
                    if n == 0 && isRow(o) {
                        throw pos.error("can't evaluate field \(name) in this object (it has: \(o.keys.joined(separator: ", ")))")
                    }
                    return .null
                }
                cur = next
            case .null:
                return .null
            default:
                throw pos.error("can't evaluate field \(name) in type \(typeName(cur))")
            }
        }
        return cur
    }

    /// Rows and inspect objects have capitalised keys (Go's exported fields); maps
    /// such as Labels have whatever keys their owner gave them.
    static func isRow(_ o: TemplateObject) -> Bool {
        !o.keys.isEmpty && o.keys.allSatisfy { $0.first.map { $0.isUppercase } ?? false }
    }

    static func typeName(_ v: TemplateValue) -> String {
        switch v {
        case .null: return "nil"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float64"
        case .string: return "string"
        case .array: return "slice"
        case .object: return "map"
        }
    }
}
