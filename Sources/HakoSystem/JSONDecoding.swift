/// Decodes a `Decodable` value from JSON text, without Foundation: the
/// counterpart of `JSONEncoding`, for hako's own records.
///
/// The value's own `init(from:)` (synthesized or written) decides what it
/// reads, as with Foundation's `JSONDecoder` under its default strategies:
/// objects are keyed containers, arrays unkeyed ones, a missing key is
/// `keyNotFound`, a key whose value is `null` reads as absent in
/// `decodeIfPresent`. Errors are the standard library's `DecodingError`, as
/// Foundation's are. Like `JSONEncoding`, it gives `Data`, `URL` and `Date`
/// no special form: the records hold none of them.
///
/// Why: Foundation's decoder builds type metadata by mangled name for its
/// own machinery in every fresh process; reading a network's definition and
/// an endpoint record that way was ~40 % of a bridge start's network thread,
/// the longest part of that start.
public struct JSONDecoding: Sendable {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let tree: JSON
        do { tree = try JSON.parse(bytes) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "The given data was not valid JSON: \(error)", underlyingError: error))
        }
        return try decode(type, from: tree)
    }

    public func decode<T: Decodable>(_ type: T.Type, from tree: JSON) throws -> T {
        try T(from: TreeDecoder(value: tree, codingPath: []))
    }
}

// MARK: - reading one value

private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "Index \(intValue ?? 0)" }
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private func kind(_ v: JSON) -> String {
    switch v {
    case .null: return "null"
    case .bool: return "a bool"
    case .number: return "a number"
    case .string: return "a string"
    case .array: return "an array"
    case .object: return "an object"
    }
}

private func mismatch(_ type: Any.Type, _ v: JSON, _ path: [any CodingKey]) -> DecodingError {
    if case .null = v {
        return .valueNotFound(type, .init(codingPath: path, debugDescription: "Expected \(type) value but found null instead."))
    }
    return .typeMismatch(type, .init(codingPath: path, debugDescription: "Expected to decode \(type) but found \(kind(v)) instead."))
}

/// The primitive reads every container shares: a value and where it is.
private struct Scalar {
    let value: JSON
    let path: [any CodingKey]

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw mismatch(Bool.self, value, path) }
        return b
    }

    func string() throws -> String {
        guard case .string(let s) = value else { throw mismatch(String.self, value, path) }
        return s
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        guard case .number(let text) = value else { throw mismatch(type, value, path) }
        if let i = I(text) { return i }
        // "1e3" or "2.0": a whole number written otherwise.
        if let d = Double(text), let i = I(exactly: d) { return i }
        throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "Parsed JSON number <\(text)> does not fit in \(type)."))
    }

    func floating<F: BinaryFloatingPoint & LosslessStringConvertible>(_ type: F.Type) throws -> F {
        guard case .number(let text) = value else { throw mismatch(type, value, path) }
        if let f = F(text) { return f }
        guard let d = Double(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "Parsed JSON number <\(text)> is not a number."))
        }
        return F(d)
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try T(from: TreeDecoder(value: value, codingPath: path))
    }
}

private struct TreeDecoder: Decoder {
    let value: JSON
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch([String: Any].self, value, codingPath) }
        var byKey: [String: JSON] = [:]
        byKey.reserveCapacity(members.count)
        for (k, v) in members { byKey[k] = v }  // a repeated key: the last one, as JSON's subscript reads
        return KeyedDecodingContainer(KeyedReader<Key>(members: byKey, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch([Any].self, value, codingPath) }
        return UnkeyedReader(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleReader(value: value, codingPath: codingPath)
    }
}

// MARK: - the three containers

private struct SingleReader: SingleValueDecodingContainer {
    let value: JSON
    let codingPath: [any CodingKey]
    var scalar: Scalar { Scalar(value: value, path: codingPath) }

    func decodeNil() -> Bool { value.isNull }
    func decode(_ type: Bool.Type) throws -> Bool { try scalar.bool() }
    func decode(_ type: String.Type) throws -> String { try scalar.string() }
    func decode(_ type: Double.Type) throws -> Double { try scalar.floating(type) }
    func decode(_ type: Float.Type) throws -> Float { try scalar.floating(type) }
    func decode(_ type: Int.Type) throws -> Int { try scalar.integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try scalar.integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try scalar.integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try scalar.integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try scalar.integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try scalar.integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try scalar.integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try scalar.integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try scalar.integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try scalar.integer(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try scalar.decode(type) }
}

private struct KeyedReader<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: JSON]
    let codingPath: [any CodingKey]

    /// A plain loop: `compactMap` over the keys ran unspecialized, and the
    /// runtime resolved its `Element` by scanning every conformance record
    /// of the binary (tens to hundreds of µs, the first time in a process:
    /// any `[String: T]` decoded, as a network's labels are on every bridge
    /// start).
    var allKeys: [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(members.count)
        for name in members.keys {
            if let key = Key(stringValue: name) { keys.append(key) }
        }
        return keys
    }
    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    func scalar(_ key: Key) throws -> Scalar {
        guard let v = members[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value associated with key \(key.stringValue)."))
        }
        return Scalar(value: v, path: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { try scalar(key).value.isNull }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try scalar(key).bool() }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try scalar(key).string() }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try scalar(key).floating(type) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try scalar(key).floating(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try scalar(key).integer(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try scalar(key).integer(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try scalar(key).integer(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try scalar(key).integer(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try scalar(key).integer(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try scalar(key).integer(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try scalar(key).integer(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try scalar(key).integer(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try scalar(key).integer(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try scalar(key).integer(type) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try scalar(key).decode(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let s = try scalar(key)
        return try TreeDecoder(value: s.value, codingPath: s.path).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let s = try scalar(key)
        return try TreeDecoder(value: s.value, codingPath: s.path).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { TreeDecoder(value: members["super"] ?? .null, codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder {
        TreeDecoder(value: members[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedReader: UnkeyedDecodingContainer {
    let items: [JSON]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(items: [JSON], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    /// The next item; the index moves on only when it was read.
    mutating func next(_ type: Any.Type) throws -> Scalar {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [IndexKey(currentIndex)], debugDescription: "Unkeyed container is at end."))
        }
        return Scalar(value: items[currentIndex], path: codingPath + [IndexKey(currentIndex)])
    }

    mutating func read<T>(_ type: T.Type, _ body: (Scalar) throws -> T) throws -> T {
        let v = try body(try next(type))
        currentIndex += 1
        return v
    }

    mutating func decodeNil() throws -> Bool {
        guard try next(Never.self).value.isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try read(type) { try $0.bool() } }
    mutating func decode(_ type: String.Type) throws -> String { try read(type) { try $0.string() } }
    mutating func decode(_ type: Double.Type) throws -> Double { try read(type) { try $0.floating(type) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try read(type) { try $0.floating(type) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try read(type) { try $0.integer(type) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try read(type) { try $0.integer(type) } }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try read(type) { try $0.decode(type) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try read(KeyedDecodingContainer<NestedKey>.self) { try TreeDecoder(value: $0.value, codingPath: $0.path).container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try read((any UnkeyedDecodingContainer).self) { try TreeDecoder(value: $0.value, codingPath: $0.path).unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder {
        try read((any Decoder).self) { TreeDecoder(value: $0.value, codingPath: $0.path) }
    }
}
