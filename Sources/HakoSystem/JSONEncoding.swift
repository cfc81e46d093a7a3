/// Encodes an `Encodable` value as JSON text, without Foundation.
///
/// The value's own `encode(to:)` (synthesized or written) decides its form, as
/// with Foundation's `JSONEncoder` under its default strategies: keyed
/// containers are objects, unkeyed ones arrays, and `Dictionary` with `String`
/// or `Int` keys an object. Foundation's encoder also special-cases `Data`
/// (base64), `URL` (a string), `Date` and `Decimal`; this one does not, and
/// is for hako's own records, which hold none of them.
///
/// Why: Foundation's encoder asks the runtime, for every value, whether its
/// type is one of those special cases; in a fresh process each such question
/// is a search of the binary's protocol conformances. Writing a container's
/// record (`config.json`) that way cost every `hako run` ~1.1 M instructions.
public struct JSONEncoding: Sendable {
    /// Members of every object sorted by key (the same value always gives the same text).
    public var sortedKeys: Bool

    public init(sortedKeys: Bool = true) { self.sortedKeys = sortedKeys }

    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try tree(value).bytes()
    }

    /// The value as a `JSON` tree.
    public func tree<T: Encodable>(_ value: T) throws -> JSON {
        let slot = Slot()
        try value.encode(to: TreeEncoder(slot: slot, codingPath: []))
        return (slot.node ?? .object(ObjectNode())).json(sorted: sortedKeys)
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var reason: String
        public var description: String { path.isEmpty ? reason : "\(reason) at \(path)" }
    }
}

// MARK: - the tree being built

/// Objects and arrays are references: a container handed out earlier keeps
/// writing into the node its parent already holds.
private final class ObjectNode {
    var members: [(String, Node)] = []
    func set(_ key: String, _ node: Node) {
        if let i = members.firstIndex(where: { $0.0 == key }) { members[i].1 = node } else { members.append((key, node)) }
    }
    func object(_ key: String) -> ObjectNode {
        if let i = members.firstIndex(where: { $0.0 == key }), case .object(let o) = members[i].1 { return o }
        let o = ObjectNode()
        set(key, .object(o))
        return o
    }
    func array(_ key: String) -> ArrayNode {
        if let i = members.firstIndex(where: { $0.0 == key }), case .array(let a) = members[i].1 { return a }
        let a = ArrayNode()
        set(key, .array(a))
        return a
    }
}

private final class ArrayNode {
    var items: [Node] = []
}

private enum Node {
    case value(JSON)
    case object(ObjectNode)
    case array(ArrayNode)

    func json(sorted: Bool) -> JSON {
        switch self {
        case .value(let v): return v
        case .array(let a): return .array(a.items.map { $0.json(sorted: sorted) })
        case .object(let o):
            let m = o.members.map { ($0.0, $0.1.json(sorted: sorted)) }
            return .object(sorted ? m.sorted { $0.0 < $1.0 } : m)
        }
    }
}

/// Where an encoder puts what its value encodes: a parent's member or
/// element, or the top of the tree.
private final class Slot {
    var node: Node?
    let store: ((Node) -> Void)?

    init(store: ((Node) -> Void)? = nil) { self.store = store }

    func put(_ n: Node) {
        node = n
        store?(n)
    }

    func object() -> ObjectNode {
        if case .object(let o) = node { return o }
        let o = ObjectNode()
        put(.object(o))
        return o
    }

    func array() -> ArrayNode {
        if case .array(let a) = node { return a }
        let a = ArrayNode()
        put(.array(a))
        return a
    }
}

private func pathText(_ path: [any CodingKey]) -> String {
    var s = ""
    for k in path {
        if let i = k.intValue, k.stringValue == String(i) { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + k.stringValue }
    }
    return s
}

/// A floating-point number in its shortest form that reads back the same
/// (a `Float` as a `Float`: 0.1, not 0.10000000149011612), integral values
/// without a fraction, as Foundation writes them.
private func number<F: BinaryFloatingPoint & LosslessStringConvertible>(_ v: F, _ path: [any CodingKey]) throws -> JSON {
    guard v.isFinite else { throw JSONEncoding.Failure(path: pathText(path), reason: "\(v) is not a JSON number") }
    if v == v.rounded(), abs(v) < 1e15 { return .number(String(Int64(v))) }
    return .number(String(v))
}

/// A nested value: encoded by its own `encode(to:)` into a fresh slot.
private func node<T: Encodable>(_ value: T, _ path: [any CodingKey]) throws -> Node {
    let slot = Slot()
    try value.encode(to: TreeEncoder(slot: slot, codingPath: path))
    return slot.node ?? .object(ObjectNode())
}

private struct TreeEncoder: Encoder {
    let slot: Slot
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(KeyedTree<Key>(object: slot.object(), codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        UnkeyedTree(array: slot.array(), codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleTree(slot: slot, codingPath: codingPath)
    }
}

private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { String(intValue ?? 0) }
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private struct SuperKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { nil }
    init?(intValue: Int) { nil }
}

private struct KeyedTree<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let object: ObjectNode
    let codingPath: [any CodingKey]

    func put(_ v: JSON, _ key: Key) { object.set(key.stringValue, .value(v)) }

    mutating func encodeNil(forKey key: Key) throws { put(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(try number(value, codingPath + [key]), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(try number(value, codingPath + [key]), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(.int(Int64(value)), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(.int(Int64(value)), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(.int(Int64(value)), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(.int(Int64(value)), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(.int(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(.uint(UInt64(value)), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(.uint(UInt64(value)), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(.uint(UInt64(value)), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(.uint(UInt64(value)), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(.uint(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        object.set(key.stringValue, try node(value, codingPath + [key]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(KeyedTree<NestedKey>(object: object.object(key.stringValue), codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        UnkeyedTree(array: object.array(key.stringValue), codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { encoder(at: "super", SuperKey()) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { encoder(at: key.stringValue, key) }

    func encoder(at name: String, _ key: any CodingKey) -> any Encoder {
        let parent = object
        return TreeEncoder(slot: Slot { parent.set(name, $0) }, codingPath: codingPath + [key])
    }
}

private struct UnkeyedTree: UnkeyedEncodingContainer, ValueSink {
    let array: ArrayNode
    let codingPath: [any CodingKey]
    var count: Int { array.items.count }

    var nextPath: [any CodingKey] { codingPath + [IndexKey(array.items.count)] }
    func store(_ n: Node) { array.items.append(n) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let o = ObjectNode()
        let path = nextPath
        array.items.append(.object(o))
        return KeyedEncodingContainer(KeyedTree<NestedKey>(object: o, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let a = ArrayNode()
        let path = nextPath
        array.items.append(.array(a))
        return UnkeyedTree(array: a, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let parent = array
        let i = parent.items.count
        parent.items.append(.value(.null))
        return TreeEncoder(slot: Slot { parent.items[i] = $0 }, codingPath: codingPath + [IndexKey(i)])
    }
}

private struct SingleTree: SingleValueEncodingContainer, ValueSink {
    let slot: Slot
    let codingPath: [any CodingKey]

    var nextPath: [any CodingKey] { codingPath }
    func store(_ n: Node) { slot.put(n) }
}

/// The value encodings an unkeyed and a single-value container share: each
/// value becomes a node, stored where the container keeps its next one.
private protocol ValueSink {
    /// The coding path of the value stored next.
    var nextPath: [any CodingKey] { get }
    func store(_ n: Node)
}

extension ValueSink {
    func put(_ v: JSON) { store(.value(v)) }

    mutating func encodeNil() throws { put(.null) }
    mutating func encode(_ value: Bool) throws { put(.bool(value)) }
    mutating func encode(_ value: String) throws { put(.string(value)) }
    mutating func encode(_ value: Double) throws { put(try number(value, nextPath)) }
    mutating func encode(_ value: Float) throws { put(try number(value, nextPath)) }
    mutating func encode(_ value: Int) throws { put(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { put(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { put(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { put(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { put(.int(value)) }
    mutating func encode(_ value: UInt) throws { put(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt8) throws { put(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt16) throws { put(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt32) throws { put(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt64) throws { put(.uint(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws { store(try node(value, nextPath)) }
}
