import FoundationEssentials

/// A compact binary form of any `Codable` value, for the Raft log's entries
/// (format 3, `StoreBatch+Entry.swift`): the synthesized `Codable` of the
/// records decides what is written, as with JSON, so a field added to a record
/// needs no code here; but numbers are varints or raw IEEE bits instead of
/// text, strings are length-prefixed UTF-8 instead of escaped, and each key is
/// written once per document, referred to by its number after that.
///
/// A document is a little-endian `UInt32`, the offset of its key table; the
/// root value; the key table (a varint count, then each key as a varint length
/// and UTF-8). Anything after the table must be zero bytes (padding). A value
/// is a tag byte and its payload:
///
///     0 nil   1 false   2 true
///     3 Int   (zigzag varint)          4 UInt (varint)
///     5 Double (8 bytes, IEEE, LE)      6 Float (4 bytes)
///     7 String (varint length, UTF-8)   8 Data (varint length, bytes)
///     9 keyed   (UInt32 LE length of the rest, then (varint key number, value)…)
///    10 unkeyed (UInt32 LE length of the rest, then value…)
///    11 Double with an integral value (zigzag varint: timestamps of whole seconds, zeros)
///
/// Containers carry their length, so a decoder skips a value it is not asked
/// for without reading it. Everything read is bounds-checked: a truncated or
/// corrupt document is a `DecodingError`, never a crash.
enum BinaryTag: UInt8 {
    case null = 0, falseValue, trueValue, int, uint, double, float, string, data, keyed, unkeyed, integralDouble
}

struct BinaryEncoder {
    var userInfo: [CodingUserInfoKey: Any] = [:]

    /// The document; `padding` zero bytes are appended up to a multiple of it.
    func encode<T: Encodable>(_ value: T, reserving capacity: Int = 4096, prefix: [UInt8] = [], padding: Int = 1) throws -> [UInt8] {
        let impl = BinaryEncoderImpl(userInfo: userInfo, capacity: capacity + prefix.count)
        impl.buffer.append(contentsOf: prefix)
        let tableOffsetAt = impl.buffer.count
        impl.buffer.append(contentsOf: [0, 0, 0, 0])
        try impl.encodeValue(value)
        if let e = impl.deferredError { throw e }
        impl.patchUInt32(at: tableOffsetAt, UInt32(truncatingIfNeeded: impl.buffer.count - tableOffsetAt))
        impl.writeVarint(UInt64(impl.keyList.count))
        for k in impl.keyList {
            var k = k
            k.withUTF8 { u in
                impl.writeVarint(UInt64(u.count))
                impl.buffer.append(contentsOf: u)
            }
        }
        guard impl.buffer.count - tableOffsetAt <= Int(UInt32.max) else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "more than 4 GiB"))
        }
        if padding > 1 { while impl.buffer.count % padding != 0 { impl.buffer.append(0) } }
        return impl.buffer
    }
}

/// Its state is only ever accessed by one call at a time (no access overlaps
/// another), so the run-time exclusivity checks, a third of the encoding's
/// time, are left out.
final class BinaryEncoderImpl: Encoder, SingleValueEncodingContainer {
    @exclusivity(unchecked) var buffer: [UInt8]
    @exclusivity(unchecked) var codingPath: [any CodingKey] = []
    let userInfo: [CodingUserInfoKey: Any]
    @exclusivity(unchecked) var keyNumbers: [String: Int] = [:]
    @exclusivity(unchecked) var keyList: [String] = []
    /// Open containers, innermost last: where each one's length goes, and its id.
    @exclusivity(unchecked) var frames: [(lengthAt: Int, id: Int)] = []
    @exclusivity(unchecked) var nextFrameID = 0
    /// The container opened for the value being encoded (a second
    /// `container(keyedBy:)` on the same value continues it).
    @exclusivity(unchecked) var slotFrame: Int?
    /// A misuse the non-throwing `Encoder` methods cannot report at once.
    var deferredError: (any Error)?

    init(userInfo: [CodingUserInfoKey: Any], capacity: Int) {
        self.userInfo = userInfo
        buffer = []
        buffer.reserveCapacity(capacity)
    }

    // MARK: bytes

    @inline(__always) func write(_ tag: BinaryTag) { buffer.append(tag.rawValue) }

    func writeVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            buffer.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        buffer.append(UInt8(v))
    }

    func patchUInt32(at i: Int, _ v: UInt32) {
        buffer[i] = UInt8(truncatingIfNeeded: v)
        buffer[i + 1] = UInt8(truncatingIfNeeded: v >> 8)
        buffer[i + 2] = UInt8(truncatingIfNeeded: v >> 16)
        buffer[i + 3] = UInt8(truncatingIfNeeded: v >> 24)
    }

    func writeInt(_ v: Int64) {
        write(.int)
        writeVarint(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
    }

    func writeUInt(_ v: UInt64) {
        write(.uint)
        writeVarint(v)
    }

    func writeDouble(_ v: Double) {
        if v.rounded(.towardZero) == v, v.magnitude < 9_007_199_254_740_992, !(v == 0 && v.sign == .minus) {
            let i = Int64(v)
            write(.integralDouble)
            writeVarint(UInt64(bitPattern: (i << 1) ^ (i >> 63)))
            return
        }
        write(.double)
        let bits = v.bitPattern
        for s in stride(from: 0, to: 64, by: 8) { buffer.append(UInt8(truncatingIfNeeded: bits >> UInt64(s))) }
    }

    func writeFloat(_ v: Float) {
        write(.float)
        let bits = v.bitPattern
        for s in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8(truncatingIfNeeded: bits >> UInt32(s))) }
    }

    func writeString(_ s: String) {
        write(.string)
        var s = s
        s.withUTF8 { u in
            writeVarint(UInt64(u.count))
            buffer.append(contentsOf: u)
        }
    }

    /// Key numbers are found by guessing first: the key that followed the
    /// last one written the previous time (records of one type write their
    /// keys in the same order), checked by comparing names; by hashing else.
    @exclusivity(unchecked) var successor: [Int] = []
    @exclusivity(unchecked) var lastKey = -1
    @exclusivity(unchecked) var firstKey = -1

    func writeKey(_ key: some CodingKey) {
        let name = key.stringValue
        let guess = lastKey >= 0 ? successor[lastKey] : firstKey
        let n: Int
        if guess >= 0, keyList[guess] == name {
            n = guess
        } else {
            if let known = keyNumbers[name] {
                n = known
            } else {
                n = keyList.count
                keyNumbers[name] = n
                keyList.append(name)
                successor.append(-1)
            }
            if lastKey >= 0 { successor[lastKey] = n } else { firstKey = n }
        }
        lastKey = n
        writeVarint(UInt64(n))
    }

    // MARK: containers

    /// Opens a container (its tag and a length to patch) as the innermost frame; its id.
    func openFrame(_ tag: BinaryTag) -> Int {
        write(tag)
        let id = nextFrameID
        nextFrameID += 1
        frames.append((buffer.count, id))
        buffer.append(contentsOf: [0, 0, 0, 0])
        return id
    }

    func closeTopFrame() {
        let f = frames.removeLast()
        patchUInt32(at: f.lengthAt, UInt32(truncatingIfNeeded: buffer.count - f.lengthAt - 4))
    }

    /// Before a container writes: the containers opened inside it since are
    /// finished (closed); writing to one already closed is refused.
    func prepare(frame id: Int, depth: Int) throws {
        guard depth < frames.count, frames[depth].id == id else {
            throw EncodingError.invalidValue(id, .init(codingPath: codingPath, debugDescription: "a container written to after it was closed"))
        }
        while frames.count > depth + 1 { closeTopFrame() }
    }

    /// Encodes one value where the buffer stands (the root, after a key, an element).
    func encodeValue<T: Encodable>(_ value: T) throws {
        if let data = value as? Data {
            write(.data)
            writeVarint(UInt64(data.count))
            buffer.append(contentsOf: data)
            return
        }
        let depth = frames.count, start = buffer.count, outer = slotFrame
        slotFrame = nil
        defer { slotFrame = outer }
        try value.encode(to: self)
        while frames.count > depth { closeTopFrame() }
        // Encoded nothing at all: an empty keyed container, as JSON's `{}`.
        if buffer.count == start {
            _ = openFrame(.keyed)
            closeTopFrame()
        }
    }

    func encodeValue<T: Encodable>(_ value: T, key: some CodingKey) throws {
        codingPath.append(key)
        defer { codingPath.removeLast() }
        try encodeValue(value)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if let id = slotFrame, let depth = frames.lastIndex(where: { $0.id == id }) {
            return KeyedEncodingContainer(BinaryKeyedEncodingContainer<Key>(impl: self, frame: id, depth: depth, codingPath: codingPath))
        }
        let depth = frames.count
        let id = openFrame(.keyed)
        slotFrame = id
        return KeyedEncodingContainer(BinaryKeyedEncodingContainer<Key>(impl: self, frame: id, depth: depth, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let depth = frames.count
        let id = openFrame(.unkeyed)
        slotFrame = id
        return BinaryUnkeyedEncodingContainer(impl: self, frame: id, depth: depth, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    // MARK: single value

    func encodeNil() throws { write(.null) }
    func encode(_ value: Bool) throws { write(value ? .trueValue : .falseValue) }
    func encode(_ value: String) throws { writeString(value) }
    func encode(_ value: Double) throws { writeDouble(value) }
    func encode(_ value: Float) throws { writeFloat(value) }
    func encode(_ value: Int) throws { writeInt(Int64(value)) }
    func encode(_ value: Int8) throws { writeInt(Int64(value)) }
    func encode(_ value: Int16) throws { writeInt(Int64(value)) }
    func encode(_ value: Int32) throws { writeInt(Int64(value)) }
    func encode(_ value: Int64) throws { writeInt(value) }
    func encode(_ value: UInt) throws { writeUInt(UInt64(value)) }
    func encode(_ value: UInt8) throws { writeUInt(UInt64(value)) }
    func encode(_ value: UInt16) throws { writeUInt(UInt64(value)) }
    func encode(_ value: UInt32) throws { writeUInt(UInt64(value)) }
    func encode(_ value: UInt64) throws { writeUInt(value) }
    func encode<T: Encodable>(_ value: T) throws { try encodeValue(value) }
}

/// `superEncoder` is not supported (no record uses it): encoding fails with this.
struct BinaryUnsupportedEncoder: Encoder {
    let impl: BinaryEncoderImpl
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { impl.userInfo }

    init(impl: BinaryEncoderImpl, codingPath: [any CodingKey]) {
        self.impl = impl
        self.codingPath = codingPath
        if impl.deferredError == nil {
            impl.deferredError = EncodingError.invalidValue("super", .init(codingPath: codingPath, debugDescription: "superEncoder is not supported by the binary encoding"))
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(BinaryKeyedEncodingContainer<Key>(impl: impl, frame: -1, depth: Int.max, codingPath: codingPath))
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer { BinaryUnkeyedEncodingContainer(impl: impl, frame: -1, depth: Int.max, codingPath: codingPath) }
    func singleValueContainer() -> any SingleValueEncodingContainer {
        BinaryUnkeyedEncodingContainer(impl: impl, frame: -1, depth: Int.max, codingPath: codingPath)
    }
}

struct BinaryKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let impl: BinaryEncoderImpl
    let frame: Int
    let depth: Int
    var codingPath: [any CodingKey]

    @inline(__always) func begin(_ key: Key) throws {
        try impl.prepare(frame: frame, depth: depth)
        impl.writeKey(key)
    }

    mutating func encodeNil(forKey key: Key) throws { try begin(key); impl.write(.null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try begin(key); impl.write(value ? .trueValue : .falseValue) }
    mutating func encode(_ value: String, forKey key: Key) throws { try begin(key); impl.writeString(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try begin(key); impl.writeDouble(value) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try begin(key); impl.writeFloat(value) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try begin(key); impl.writeInt(Int64(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try begin(key); impl.writeInt(Int64(value)) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try begin(key); impl.writeInt(Int64(value)) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try begin(key); impl.writeInt(Int64(value)) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try begin(key); impl.writeInt(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try begin(key); impl.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try begin(key); impl.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try begin(key); impl.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try begin(key); impl.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try begin(key); impl.writeUInt(value) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key)
        try impl.encodeValue(value, key: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        do { try begin(key) } catch {
            impl.deferredError = impl.deferredError ?? error
            return KeyedEncodingContainer(BinaryKeyedEncodingContainer<NestedKey>(impl: impl, frame: -1, depth: Int.max, codingPath: codingPath + [key]))
        }
        let d = impl.frames.count
        let id = impl.openFrame(.keyed)
        return KeyedEncodingContainer(BinaryKeyedEncodingContainer<NestedKey>(impl: impl, frame: id, depth: d, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        do { try begin(key) } catch {
            impl.deferredError = impl.deferredError ?? error
            return BinaryUnkeyedEncodingContainer(impl: impl, frame: -1, depth: Int.max, codingPath: codingPath + [key])
        }
        let d = impl.frames.count
        let id = impl.openFrame(.unkeyed)
        return BinaryUnkeyedEncodingContainer(impl: impl, frame: id, depth: d, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { BinaryUnsupportedEncoder(impl: impl, codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { BinaryUnsupportedEncoder(impl: impl, codingPath: codingPath + [key]) }
}

/// Also the single value container of `BinaryUnsupportedEncoder` (frame -1: every write refused).
struct BinaryUnkeyedEncodingContainer: UnkeyedEncodingContainer, SingleValueEncodingContainer {
    let impl: BinaryEncoderImpl
    let frame: Int
    let depth: Int
    var codingPath: [any CodingKey]
    var count = 0

    init(impl: BinaryEncoderImpl, frame: Int, depth: Int, codingPath: [any CodingKey]) {
        self.impl = impl
        self.frame = frame
        self.depth = depth
        self.codingPath = codingPath
    }

    @inline(__always) mutating func begin() throws {
        try impl.prepare(frame: frame, depth: depth)
        count += 1
    }

    mutating func encodeNil() throws { try begin(); impl.write(.null) }
    mutating func encode(_ value: Bool) throws { try begin(); impl.write(value ? .trueValue : .falseValue) }
    mutating func encode(_ value: String) throws { try begin(); impl.writeString(value) }
    mutating func encode(_ value: Double) throws { try begin(); impl.writeDouble(value) }
    mutating func encode(_ value: Float) throws { try begin(); impl.writeFloat(value) }
    mutating func encode(_ value: Int) throws { try begin(); impl.writeInt(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try begin(); impl.writeInt(Int64(value)) }
    mutating func encode(_ value: Int16) throws { try begin(); impl.writeInt(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try begin(); impl.writeInt(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try begin(); impl.writeInt(value) }
    mutating func encode(_ value: UInt) throws { try begin(); impl.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try begin(); impl.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { try begin(); impl.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { try begin(); impl.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { try begin(); impl.writeUInt(value) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try begin()
        try impl.encodeValue(value, key: BinaryIndexKey(count - 1))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        do { try begin() } catch {
            impl.deferredError = impl.deferredError ?? error
            return KeyedEncodingContainer(BinaryKeyedEncodingContainer<NestedKey>(impl: impl, frame: -1, depth: Int.max, codingPath: codingPath))
        }
        let d = impl.frames.count
        let id = impl.openFrame(.keyed)
        return KeyedEncodingContainer(BinaryKeyedEncodingContainer<NestedKey>(impl: impl, frame: id, depth: d, codingPath: codingPath + [BinaryIndexKey(count - 1)]))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        do { try begin() } catch {
            impl.deferredError = impl.deferredError ?? error
            return BinaryUnkeyedEncodingContainer(impl: impl, frame: -1, depth: Int.max, codingPath: codingPath)
        }
        let d = impl.frames.count
        let id = impl.openFrame(.unkeyed)
        return BinaryUnkeyedEncodingContainer(impl: impl, frame: id, depth: d, codingPath: codingPath + [BinaryIndexKey(count - 1)])
    }

    mutating func superEncoder() -> any Encoder { BinaryUnsupportedEncoder(impl: impl, codingPath: codingPath) }
}

/// An element's position, in coding paths.
struct BinaryIndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { intValue.map { "Index \($0)" } ?? "" }
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

// MARK: - decoding

struct BinaryDecoder {
    var userInfo: [CodingUserInfoKey: Any] = [:]

    /// Decodes a document (`BinaryEncoder`), followed by nothing but zero bytes.
    func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        guard let base = bytes.baseAddress, bytes.count >= 5 else { throw BinaryDecoderImpl.corrupt([], "truncated: \(bytes.count) bytes") }
        let tableAt = Int(UInt32(base.load(fromByteOffset: 0, as: UInt8.self)) | UInt32(base.load(fromByteOffset: 1, as: UInt8.self)) << 8
            | UInt32(base.load(fromByteOffset: 2, as: UInt8.self)) << 16 | UInt32(base.load(fromByteOffset: 3, as: UInt8.self)) << 24)
        guard bytes.count <= Int(Int32.max) else { throw BinaryDecoderImpl.corrupt([], "a document of more than 2 GiB") }
        guard tableAt > 4, tableAt < bytes.count else { throw BinaryDecoderImpl.corrupt([], "truncated: its key table would be at \(tableAt) of \(bytes.count) bytes") }
        let impl = BinaryDecoderImpl(base: base, end: tableAt, userInfo: userInfo)
        // The key table, then only padding.
        var p = tableAt
        let n = try impl.readVarint(&p, limit: bytes.count)
        guard n <= UInt64(bytes.count - p) else { throw BinaryDecoderImpl.corrupt([], "truncated: \(n) keys in \(bytes.count - p) bytes") }
        var names: [String] = []
        names.reserveCapacity(Int(n))
        for _ in 0..<n {
            let len = try impl.readVarint(&p, limit: bytes.count)
            guard len <= UInt64(bytes.count - p) else { throw BinaryDecoderImpl.corrupt([], "truncated key table") }
            names.append(try impl.string(at: p, count: Int(len)))
            p += Int(len)
        }
        for i in p..<bytes.count where bytes[i] != 0 { throw BinaryDecoderImpl.corrupt([], "\(bytes.count - p) unexpected bytes after the key table") }
        impl.keyNames = names
        impl.position = 4
        let value = try T(from: impl)
        return value
    }
}

/// As the encoder's, its state is never accessed by two calls at once: no run-time exclusivity checks.
final class BinaryDecoderImpl: Decoder, SingleValueDecodingContainer {
    let base: UnsafeRawPointer
    /// Where the values end (the key table starts).
    let end: Int
    /// The key table, and each key's number.
    var keyNames: [String] = [] {
        didSet { keyNumbers = Dictionary(keyNames.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a }) }
    }
    var keyNumbers: [String: Int] = [:]
    /// The tag of the value being decoded.
    @exclusivity(unchecked) var position = 0
    @exclusivity(unchecked) var codingPath: [any CodingKey] = []
    let userInfo: [CodingUserInfoKey: Any]
    /// Per nesting depth, the keyed container last read there (its start) and
    /// where its next entry begins: decoders ask for keys in the order
    /// encoders wrote them, so the next key is usually there.
    let hints = UnsafeMutablePointer<Int>.allocate(capacity: 2 * BinaryDecoderImpl.hintDepth)
    static let hintDepth = 64

    deinit { hints.deallocate() }

    init(base: UnsafeRawPointer, end: Int, userInfo: [CodingUserInfoKey: Any]) {
        self.base = base
        self.end = end
        self.userInfo = userInfo
        hints.initialize(repeating: -1, count: 2 * BinaryDecoderImpl.hintDepth)
    }

    /// The same error at another coding path.
    static func relocated(_ error: any Error, _ path: [any CodingKey]) -> any Error {
        guard let e = error as? DecodingError else { return error }
        switch e {
        case .typeMismatch(let t, let c): return DecodingError.typeMismatch(t, .init(codingPath: path, debugDescription: c.debugDescription))
        case .valueNotFound(let t, let c): return DecodingError.valueNotFound(t, .init(codingPath: path, debugDescription: c.debugDescription))
        case .dataCorrupted(let c): return DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: c.debugDescription))
        default: return e
        }
    }

    static func corrupt(_ path: [any CodingKey], _ what: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: path, debugDescription: what))
    }

    func corrupt(_ what: String) -> DecodingError { BinaryDecoderImpl.corrupt(codingPath, what) }

    // MARK: bytes

    @inline(__always) func byte(_ i: Int) -> UInt8 { base.load(fromByteOffset: i, as: UInt8.self) }

    func readVarint(_ p: inout Int, limit: Int? = nil) throws -> UInt64 {
        let limit = limit ?? end
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard p < limit else { throw corrupt("truncated: a number runs past the end") }
            let b = byte(p)
            p += 1
            guard shift < 64, shift < 63 || b <= 1 else { throw corrupt("a number longer than 64 bits") }
            v |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }

    func string(at p: Int, count: Int) throws -> String {
        let u = UnsafeBufferPointer(start: (base + p).assumingMemoryBound(to: UInt8.self), count: count)
        // String(decoding:) repairs what is not UTF-8; what it made must be the bytes themselves.
        let s = String(decoding: u, as: UTF8.self)
        var ascii = true
        for b in u where b >= 0x80 { ascii = false; break }
        guard ascii || s.utf8.elementsEqual(u) else { throw corrupt("a string that is not UTF-8") }
        return s
    }

    func uint32(at p: Int) throws -> Int {
        guard p + 4 <= end else { throw corrupt("truncated: a container's length runs past the end") }
        return Int(UInt32(byte(p)) | UInt32(byte(p + 1)) << 8 | UInt32(byte(p + 2)) << 16 | UInt32(byte(p + 3)) << 24)
    }

    func tag(at p: Int) throws -> BinaryTag {
        guard p < end else { throw corrupt("truncated: a value runs past the end") }
        guard let t = BinaryTag(rawValue: byte(p)) else { throw corrupt("an unknown value tag \(byte(p)) at byte \(p)") }
        return t
    }

    /// Where the value at `p` ends.
    func skip(_ p: Int) throws -> Int {
        var q = p + 1
        switch try tag(at: p) {
        case .null, .falseValue, .trueValue: return q
        case .int, .uint, .integralDouble: _ = try readVarint(&q); return q
        case .double: q += 8
        case .float: q += 4
        case .string, .data:
            let n = try readVarint(&q)
            guard n <= UInt64(end - q) else { throw corrupt("truncated: \(n) bytes of a string past the end") }
            q += Int(n)
        case .keyed, .unkeyed:
            let n = try uint32(at: q)
            q += 4 + n
        }
        guard q <= end else { throw corrupt("truncated: a value runs past the end") }
        return q
    }

    /// A container's elements: from after its length to its end.
    func containerBounds(_ p: Int, _ expected: BinaryTag) throws -> (start: Int, end: Int) {
        let t = try tag(at: p)
        guard t == expected else {
            let type: Any.Type = expected == .keyed ? [String: Int].self : [Int].self
            throw DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected a \(expected == .keyed ? "keyed" : "unkeyed") container, found \(t)"))
        }
        let n = try uint32(at: p + 1)
        let start = p + 5
        guard n <= end - start else { throw corrupt("truncated: a container of \(n) bytes runs past the end") }
        return (start, start + n)
    }

    // MARK: values at an offset

    func mismatch(_ type: Any.Type, _ t: BinaryTag) -> DecodingError {
        .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected \(type), found \(t)"))
    }

    func isNil(at p: Int) throws -> Bool { try tag(at: p) == .null }

    func bool(at p: Int) throws -> Bool {
        switch try tag(at: p) {
        case .trueValue: return true
        case .falseValue: return false
        case let t: throw mismatch(Bool.self, t)
        }
    }

    func int64(at p: Int) throws -> Int64 {
        var q = p + 1
        switch try tag(at: p) {
        case .int:
            let z = try readVarint(&q)
            return Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1)
        case .uint:
            let u = try readVarint(&q)
            guard let i = Int64(exactly: u) else { throw corrupt("\(u) does not fit Int64") }
            return i
        case let t: throw mismatch(Int64.self, t)
        }
    }

    func uint64(at p: Int) throws -> UInt64 {
        var q = p + 1
        switch try tag(at: p) {
        case .uint: return try readVarint(&q)
        case .int:
            let i = try int64(at: p)
            guard let u = UInt64(exactly: i) else { throw corrupt("\(i) does not fit an unsigned integer") }
            return u
        case let t: throw mismatch(UInt64.self, t)
        }
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type, at p: Int) throws -> I {
        if I.isSigned {
            let v = try int64(at: p)
            guard let i = I(exactly: v) else { throw corrupt("\(v) does not fit \(I.self)") }
            return i
        }
        let v = try uint64(at: p)
        guard let i = I(exactly: v) else { throw corrupt("\(v) does not fit \(I.self)") }
        return i
    }

    func double(at p: Int) throws -> Double {
        var q = p + 1
        switch try tag(at: p) {
        case .double:
            guard q + 8 <= end else { throw corrupt("truncated: a number runs past the end") }
            var bits: UInt64 = 0
            for i in 0..<8 { bits |= UInt64(byte(q + i)) << UInt64(8 * i) }
            return Double(bitPattern: bits)
        case .float: return Double(try float(at: p))
        case .integralDouble:
            let z = try readVarint(&q)
            return Double(Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1))
        case .int: return Double(try int64(at: p))
        case .uint: return Double(try uint64(at: p))
        case let t: throw mismatch(Double.self, t)
        }
    }

    func float(at p: Int) throws -> Float {
        switch try tag(at: p) {
        case .float:
            guard p + 5 <= end else { throw corrupt("truncated: a number runs past the end") }
            var bits: UInt32 = 0
            for i in 0..<4 { bits |= UInt32(byte(p + 1 + i)) << UInt32(8 * i) }
            return Float(bitPattern: bits)
        case .double, .integralDouble, .int, .uint: return Float(try double(at: p))
        case let t: throw mismatch(Float.self, t)
        }
    }

    func string(at p: Int) throws -> String {
        let t = try tag(at: p)
        guard t == .string else { throw mismatch(String.self, t) }
        var q = p + 1
        let n = try readVarint(&q)
        guard n <= UInt64(end - q) else { throw corrupt("truncated: \(n) bytes of a string past the end") }
        return try string(at: q, count: Int(n))
    }

    func value<T: Decodable>(_ type: T.Type, at p: Int) throws -> T {
        if type == Data.self {
            let t = try tag(at: p)
            guard t == .data else { throw mismatch(Data.self, t) }
            var q = p + 1
            let n = try readVarint(&q)
            guard n <= UInt64(end - q) else { throw corrupt("truncated: \(n) bytes of data past the end") }
            guard let data = Data(bytes: base + q, count: Int(n)) as? T else { throw mismatch(Data.self, t) }
            return data
        }
        let saved = position
        position = p
        defer { position = saved }
        return try T(from: self)
    }

    func value<T: Decodable>(_ type: T.Type, at p: Int, key: any CodingKey) throws -> T {
        codingPath.append(key)
        defer { codingPath.removeLast() }
        return try value(type, at: p)
    }

    // MARK: Decoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try BinaryKeyedDecodingContainer<Key>(impl: self, at: position))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try BinaryUnkeyedDecodingContainer(impl: self, at: position)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    // MARK: single value

    func decodeNil() -> Bool { (try? isNil(at: position)) ?? false }
    func decode(_ type: Bool.Type) throws -> Bool { try bool(at: position) }
    func decode(_ type: String.Type) throws -> String { try string(at: position) }
    func decode(_ type: Double.Type) throws -> Double { try double(at: position) }
    func decode(_ type: Float.Type) throws -> Float { try float(at: position) }
    func decode(_ type: Int.Type) throws -> Int { try integer(Int.self, at: position) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(Int8.self, at: position) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(Int16.self, at: position) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(Int32.self, at: position) }
    func decode(_ type: Int64.Type) throws -> Int64 { try int64(at: position) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(UInt.self, at: position) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(UInt8.self, at: position) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(UInt16.self, at: position) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(UInt32.self, at: position) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try uint64(at: position) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if type == Data.self { return try value(type, at: position) }
        return try T(from: self)
    }
}

/// A keyed container, read as keys are asked for: from where the last key
/// was found (the order encoders write is the order decoders read), else
/// through all its entries by key number.
struct BinaryKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let impl: BinaryDecoderImpl
    /// Its entries: from `start` to `end`.
    let start: Int, end: Int
    /// Its slot in `impl.hints` (nil: nested too deep for one).
    let hint: UnsafeMutablePointer<Int>?

    init(impl: BinaryDecoderImpl, at p: Int) throws {
        self.impl = impl
        (start, end) = try impl.containerBounds(p, .keyed)
        let depth = impl.codingPath.count
        hint = depth < BinaryDecoderImpl.hintDepth ? impl.hints + 2 * depth : nil
    }

    var codingPath: [any CodingKey] { impl.codingPath }

    /// The entry at `q`: its key number and where its value is; `next` set past the value.
    @inline(__always) func entry(at q: Int, next: inout Int) throws -> (key: UInt64, value: Int) {
        var r = q
        let k = try impl.readVarint(&r, limit: end)
        next = try impl.skip(r)
        guard next <= end else { throw impl.corrupt("truncated: a value runs past its container") }
        return (k, r)
    }

    var allKeys: [Key] {
        var out: [Key] = []
        var q = start
        while q < end {
            var next = q
            guard let e = try? entry(at: q, next: &next), e.key < UInt64(impl.keyNames.count) else { break }
            if let k = Key(stringValue: impl.keyNames[Int(e.key)]) { out.append(k) }
            q = next
        }
        return out
    }

    /// The offset of the key's value, if present.
    func find(_ key: Key) throws -> Int? {
        let name = key.stringValue
        var next = start
        if let h = hint, h[0] == start, h[1] < end {
            let e = try entry(at: h[1], next: &next)
            if e.key < UInt64(impl.keyNames.count), impl.keyNames[Int(e.key)] == name {
                h[1] = next
                return e.value
            }
        }
        guard let want = impl.keyNumbers[name] else { return nil }
        var q = start
        while q < end {
            let e = try entry(at: q, next: &next)
            if e.key == UInt64(want) {
                if let h = hint { h[0] = start; h[1] = next }
                return e.value
            }
            q = next
        }
        return nil
    }

    func offset(_ key: Key) throws -> Int {
        guard let p = try find(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for \"\(key.stringValue)\""))
        }
        return p
    }

    /// A scalar's value (errors located at the key).
    @inline(__always) func scalar<T>(_ key: Key, _ body: (Int) throws -> T) throws -> T {
        let p = try offset(key)
        do { return try body(p) } catch { throw BinaryDecoderImpl.relocated(error, codingPath + [key]) }
    }

    @inline(__always) func scalarIfPresent<T>(_ key: Key, _ body: (Int) throws -> T) throws -> T? {
        guard let p = try find(key), try !impl.isNil(at: p) else { return nil }
        do { return try body(p) } catch { throw BinaryDecoderImpl.relocated(error, codingPath + [key]) }
    }

    func contains(_ key: Key) -> Bool { ((try? find(key)) ?? nil) != nil }
    func decodeNil(forKey key: Key) throws -> Bool { try impl.isNil(at: try offset(key)) }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try scalar(key) { try impl.bool(at: $0) } }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try scalar(key) { try impl.string(at: $0) } }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try scalar(key) { try impl.double(at: $0) } }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try scalar(key) { try impl.float(at: $0) } }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try scalar(key) { try impl.integer(Int.self, at: $0) } }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try scalar(key) { try impl.integer(Int8.self, at: $0) } }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try scalar(key) { try impl.integer(Int16.self, at: $0) } }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try scalar(key) { try impl.integer(Int32.self, at: $0) } }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try scalar(key) { try impl.int64(at: $0) } }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try scalar(key) { try impl.integer(UInt.self, at: $0) } }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try scalar(key) { try impl.integer(UInt8.self, at: $0) } }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try scalar(key) { try impl.integer(UInt16.self, at: $0) } }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try scalar(key) { try impl.integer(UInt32.self, at: $0) } }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try scalar(key) { try impl.uint64(at: $0) } }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try impl.value(type, at: try offset(key), key: key) }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try scalarIfPresent(key) { try impl.bool(at: $0) } }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try scalarIfPresent(key) { try impl.string(at: $0) } }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try scalarIfPresent(key) { try impl.double(at: $0) } }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try scalarIfPresent(key) { try impl.integer(Int.self, at: $0) } }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try scalarIfPresent(key) { try impl.integer(Int32.self, at: $0) } }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try scalarIfPresent(key) { try impl.int64(at: $0) } }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let p = try find(key), try !impl.isNil(at: p) else { return nil }
        return try impl.value(type, at: p, key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let p = try offset(key)
        impl.codingPath.append(key)
        defer { impl.codingPath.removeLast() }
        return KeyedDecodingContainer(try BinaryKeyedDecodingContainer<NestedKey>(impl: impl, at: p))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let p = try offset(key)
        impl.codingPath.append(key)
        defer { impl.codingPath.removeLast() }
        return try BinaryUnkeyedDecodingContainer(impl: impl, at: p)
    }

    /// A decoder of its own for the value (shares the document).
    func superDecoder(at p: Int, path: [any CodingKey]) -> any Decoder {
        let d = BinaryDecoderImpl(base: impl.base, end: impl.end, userInfo: impl.userInfo)
        d.keyNames = impl.keyNames
        d.position = p
        d.codingPath = path
        return d
    }

    func superDecoder() throws -> any Decoder {
        let key = BinaryStringKey("super")
        guard let want = impl.keyNumbers["super"] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for \"super\""))
        }
        var q = start, next = start
        while q < end {
            let e = try entry(at: q, next: &next)
            if e.key == UInt64(want) { return superDecoder(at: e.value, path: codingPath + [key]) }
            q = next
        }
        throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for \"super\""))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder { superDecoder(at: try offset(key), path: codingPath + [key]) }
}

struct BinaryStringKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

struct BinaryUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let impl: BinaryDecoderImpl
    let codingPath: [any CodingKey]
    let end: Int
    var next: Int
    let count: Int?
    var currentIndex = 0
    var isAtEnd: Bool { next >= end }

    init(impl: BinaryDecoderImpl, at p: Int) throws {
        self.impl = impl
        codingPath = impl.codingPath
        let bounds = try impl.containerBounds(p, .unkeyed)
        next = bounds.start
        end = bounds.end
        var n = 0, q = next
        while q < end {
            q = try impl.skip(q)
            n += 1
        }
        guard q == end else { throw impl.corrupt("truncated: an element runs past its container") }
        count = n
    }

    /// Decodes the next element with `body` and moves past it.
    mutating func element<T>(_ body: (BinaryDecoderImpl, Int) throws -> T) throws -> T {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath, debugDescription: "no element \(currentIndex): the container has \(currentIndex)"))
        }
        impl.codingPath.append(BinaryIndexKey(currentIndex))
        defer { impl.codingPath.removeLast() }
        let v = try body(impl, next)
        next = try impl.skip(next)
        currentIndex += 1
        return v
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, try impl.isNil(at: next) else { return false }
        next += 1
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try element { try $0.bool(at: $1) } }
    mutating func decode(_ type: String.Type) throws -> String { try element { try $0.string(at: $1) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try element { try $0.double(at: $1) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try element { try $0.float(at: $1) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try element { try $0.integer(Int.self, at: $1) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try element { try $0.integer(Int8.self, at: $1) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try element { try $0.integer(Int16.self, at: $1) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try element { try $0.integer(Int32.self, at: $1) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try element { try $0.int64(at: $1) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try element { try $0.integer(UInt.self, at: $1) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try element { try $0.integer(UInt8.self, at: $1) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try element { try $0.integer(UInt16.self, at: $1) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try element { try $0.integer(UInt32.self, at: $1) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try element { try $0.uint64(at: $1) } }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try element { try $0.value(type, at: $1) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try element { KeyedDecodingContainer(try BinaryKeyedDecodingContainer<NestedKey>(impl: $0, at: $1)) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try element { try BinaryUnkeyedDecodingContainer(impl: $0, at: $1) }
    }

    mutating func superDecoder() throws -> any Decoder {
        try element { impl, p in
            let d = BinaryDecoderImpl(base: impl.base, end: impl.end, userInfo: impl.userInfo)
            d.keyNames = impl.keyNames
            d.position = p
            d.codingPath = impl.codingPath
            return d
        }
    }
}
