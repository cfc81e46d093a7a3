import CYAML

/// A YAML problem with the line it is on (1-based).
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

/// A scalar as written: its text, whether it was plain (unquoted, so `null`,
/// `true` and `3` mean what YAML says), and its explicit tag if any.
public struct YAMLScalar: Sendable, Equatable {
    public var text: String
    public var plain: Bool
    /// The resolved tag ("tag:yaml.org,2002:str" for `!!str`), nil when none was written.
    public var tag: String?

    public init(text: String, plain: Bool = true, tag: String? = nil) {
        self.text = text
        self.plain = plain
        self.tag = tag
    }

    /// `~`, `null`, or nothing at all, unquoted (or tagged `!!null`).
    public var isNull: Bool {
        if tag == YAMLScalar.nullTag { return true }
        return plain && tag == nil && ["", "~", "null", "Null", "NULL"].contains(text)
    }

    static let nullTag = "tag:yaml.org,2002:null"
    static let mergeTag = "tag:yaml.org,2002:merge"
}

public struct YAMLPair: Sendable, Equatable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

/// A node of a YAML document with the line and column it starts on, aliases
/// replaced by copies of their anchors' nodes and merge keys (`<<`) applied.
public struct YAMLNode: Sendable, Equatable {
    public indirect enum Value: Sendable, Equatable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        /// Pairs in the order written; keys are unique.
        case mapping([YAMLPair])
    }

    public var value: Value
    public var line: Int
    public var column: Int

    public init(_ value: Value, line: Int, column: Int = 1) {
        self.value = value
        self.line = line
        self.column = column
    }
}

/// The YAML parser: libyaml's event stream built into a `YAMLNode` tree.
public enum YAML {
    /// Bounds on what a document may expand to: an alias is a copy of its
    /// anchor's whole subtree, so a few lines of nested aliases ("a billion
    /// laughs") would otherwise expand to billions of nodes.
    public struct Limits: Sendable {
        public var maxNodes: Int
        public var maxDepth: Int
        public init(maxNodes: Int = 100_000, maxDepth: Int = 100) {
            self.maxNodes = maxNodes
            self.maxDepth = maxDepth
        }
    }

    /// The first document of `text`; nil for an empty stream. More than one
    /// document is an error (a Compose file is one document).
    public static func parse(_ text: String, limits: Limits = Limits()) throws(YAMLError) -> YAMLNode? {
        var bytes = Array(text.utf8)
        if bytes.isEmpty { return nil }
        var builder = Builder(limits: limits)
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw YAMLError(line: 0, "cannot initialize the YAML parser") }
        defer { yaml_parser_delete(&parser) }
        let result: Result<YAMLNode?, YAMLError> = bytes.withUnsafeMutableBufferPointer { buf in
            guard let base = buf.baseAddress else { return .success(nil) }
            yaml_parser_set_input_string(&parser, base, buf.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    return .failure(parserError(parser))
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { return .success(builder.root) }
                do throws(YAMLError) { try builder.handle(event) } catch { return .failure(error) }
            }
        }
        return try result.get()
    }

    static func parserError(_ p: yaml_parser_t) -> YAMLError {
        let problem = p.problem.map { String(cString: $0) } ?? "invalid YAML"
        let context = p.context.map { String(cString: $0) }
        let line = Int(p.problem_mark.line) + 1
        if let context { return YAMLError(line: line, "\(problem) (\(context) at line \(Int(p.context_mark.line) + 1))") }
        return YAMLError(line: line, problem)
    }
}

private func text(_ p: UnsafeMutablePointer<yaml_char_t>?, _ count: Int) -> String {
    guard let p else { return "" }
    return String(decoding: UnsafeBufferPointer(start: p, count: count), as: UTF8.self)
}

private func cText(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
    guard let p else { return nil }
    return String(cString: UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self))
}

/// Builds the tree from events with an explicit stack (no recursion on the input's nesting).
private struct Builder {
    struct Frame {
        var isMapping: Bool
        var items: [YAMLNode] = []
        var anchor: String?
        var line: Int
        var column: Int
        /// Nodes in this subtree with aliases expanded.
        var weight = 1
    }

    let limits: Limits
    var stack: [Frame] = []
    var anchors: [String: (node: YAMLNode, weight: Int)] = [:]
    var root: YAMLNode?
    var documents = 0
    var expanded = 0

    typealias Limits = YAML.Limits

    init(limits: Limits) { self.limits = limits }

    mutating func handle(_ e: yaml_event_t) throws(YAMLError) {
        let line = Int(e.start_mark.line) + 1, column = Int(e.start_mark.column) + 1
        switch e.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 { throw YAMLError(line: line, "a Compose file holds one YAML document; found a second") }
        case YAML_SCALAR_EVENT:
            let s = e.data.scalar
            var tag = cText(s.tag)
            if tag == "!" { tag = nil }
            let node = YAMLNode(.scalar(YAMLScalar(text: text(s.value, s.length), plain: s.style == YAML_PLAIN_SCALAR_STYLE, tag: tag)),
                                line: line, column: column)
            try add(node, weight: 1, anchor: cText(s.anchor))
        case YAML_ALIAS_EVENT:
            let name = cText(e.data.alias.anchor) ?? ""
            guard let a = anchors[name] else { throw YAMLError(line: line, "unknown anchor \"\(name)\" referenced") }
            var node = a.node
            node.line = line
            node.column = column
            try add(node, weight: a.weight, anchor: nil)
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            guard stack.count < limits.maxDepth else { throw YAMLError(line: line, "nested deeper than \(limits.maxDepth) levels") }
            let anchor = e.type == YAML_SEQUENCE_START_EVENT ? cText(e.data.sequence_start.anchor) : cText(e.data.mapping_start.anchor)
            stack.append(Frame(isMapping: e.type == YAML_MAPPING_START_EVENT, anchor: anchor, line: line, column: column))
            try count(1, line: line)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let f = stack.popLast() else { return }
            let node: YAMLNode
            if f.isMapping {
                node = YAMLNode(.mapping(try Builder.mapping(f.items)), line: f.line, column: f.column)
            } else {
                node = YAMLNode(.sequence(f.items), line: f.line, column: f.column)
            }
            try append(node, weight: f.weight, anchor: f.anchor)
        default:
            break
        }
    }

    private mutating func count(_ n: Int, line: Int) throws(YAMLError) {
        expanded += n
        if expanded > limits.maxNodes {
            throw YAMLError(line: line, "the document expands to more than \(limits.maxNodes) nodes (aliases of aliases?)")
        }
    }

    private mutating func add(_ node: YAMLNode, weight: Int, anchor: String?) throws(YAMLError) {
        try count(weight, line: node.line)
        try append(node, weight: weight, anchor: anchor)
    }

    /// Places a finished node in its parent (its weight already counted).
    private mutating func append(_ node: YAMLNode, weight: Int, anchor: String?) throws(YAMLError) {
        if let anchor { anchors[anchor] = (node, weight) }
        if stack.isEmpty {
            root = node
        } else {
            stack[stack.count - 1].items.append(node)
            stack[stack.count - 1].weight += weight
        }
    }

    /// Pairs from alternating keys and values, with merge keys applied: the
    /// mapping's own keys win over merged ones, and an earlier merged mapping
    /// over a later one (YAML's merge key type).
    static func mapping(_ items: [YAMLNode]) throws(YAMLError) -> [YAMLPair] {
        var own: [YAMLPair] = []
        var merged: [YAMLNode] = []
        var seen: [String: Int] = [:]
        var i = 0
        while i + 1 < items.count {
            let key = items[i], value = items[i + 1]
            i += 2
            guard case .scalar(let k) = key.value else { throw YAMLError(line: key.line, "a mapping key must be a scalar") }
            if k.plain && k.text == "<<" && (k.tag == nil || k.tag == YAMLScalar.mergeTag) {
                switch value.value {
                case .mapping: merged.append(value)
                case .sequence(let list):
                    for m in list {
                        guard case .mapping = m.value else { throw YAMLError(line: m.line, "a merge key (<<) takes a mapping or a list of mappings") }
                        merged.append(m)
                    }
                case .scalar: throw YAMLError(line: value.line, "a merge key (<<) takes a mapping or a list of mappings")
                }
                continue
            }
            if let first = seen[k.text] { throw YAMLError(line: key.line, "mapping key \"\(k.text)\" already defined at line \(first)") }
            seen[k.text] = key.line
            own.append(YAMLPair(key: key, value: value))
        }
        for m in merged {
            guard case .mapping(let pairs) = m.value else { continue }
            for p in pairs {
                guard case .scalar(let k) = p.key.value, seen[k.text] == nil else { continue }
                seen[k.text] = p.key.line
                own.append(p)
            }
        }
        return own
    }
}
