import FoundationEssentials
import HakoSystem

/// The line protocol: one JSON object per line (UTF-8, `\n`-terminated, at
/// most `maxLine` bytes), every object an envelope
///
///     {"v":1,"id":7,"type":"heartbeat","body":{…}}      a request (id: a reply is expected)
///     {"v":1,"type":"task.status","body":{…}}           a notification (no id, no reply)
///     {"v":1,"re":7,"type":"reply","body":{…}}          the reply to request 7
///     {"v":1,"re":7,"type":"error","error":{"code":"not_found","message":"…"}}
///
/// Every message type is documented in docs/protocol.md.
public enum Wire {
    public static let version = 1
    public static let defaultMaxLine = 1 << 20

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static let decoder = JSONDecoder()

    /// Encodes a value the way the protocol writes bodies (keys as the Swift names: camelCase).
    public static func encodeJSON<T: Encodable>(_ value: T) throws -> [UInt8] {
        Array(try encoder.encode(value))
    }

    public static func decodeJSON<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try decoder.decode(type, from: Data(bytes))
    }
}

/// Error codes of `error` replies.
public enum WireCode: String, Codable, Sendable {
    /// The line is not a JSON object, not UTF-8, or nested too deep.
    case malformed
    /// The line is longer than the receiver's bound.
    case tooLong = "too_long"
    /// `v` is missing or not a version this side speaks.
    case unsupportedVersion = "unsupported_version"
    /// `type` names no message this side knows.
    case unknownType = "unknown_type"
    /// The body does not fit the message type.
    case badRequest = "bad_request"
    /// The peer's identity does not allow this message.
    case unauthorized
    case notFound = "not_found"
    case conflict
    /// Something failed on the receiving side.
    case internalError = "internal"
    /// The receiver gave up waiting (e.g. for an agent's answer).
    case timeout
    /// A coordinator that does not lead (or no leader: no quorum); the message says which leads.
    case notLeader = "not_leader"
}

extension WireCode {
    /// An engine error's code on the wire: the one mapping of `HakoError.Kind`
    /// to the protocol (no new codes: an older peer decodes every one of these).
    public init(kind: HakoError.Kind) {
        switch kind {
        case .notFound: self = .notFound
        case .conflict: self = .conflict
        case .invalidArgument, .cannotExecute, .commandNotFound: self = .badRequest
        case .permissionDenied: self = .unauthorized
        case .failed, .unsupported, .kernel: self = .internalError
        }
    }
}

public struct WireError: Codable, Sendable, Equatable, Error, CustomStringConvertible {
    public var code: WireCode
    public var message: String
    public init(_ code: WireCode, _ message: String) { self.code = code; self.message = message }
    public var description: String { message }

    /// The error a handler throws, as the peer will read it.
    public init(_ error: any Error) {
        switch error {
        case let w as WireError: self = w
        case let c as ClusterError:
            switch c {
            case .notFound(let m): self.init(.notFound, m)
            case .conflict(let m): self.init(.conflict, m)
            case .invalid(let m), .config(_, let m): self.init(.badRequest, m)
            case .security(let m): self.init(.unauthorized, m)
            case .wire(let code, let m): self.init(WireCode(rawValue: code) ?? .internalError, m)
            case .store, .network: self.init(.internalError, c.description)
            }
        default: self.init(WireCode(kind: HakoError.kind(of: error)), "\(error)")
        }
    }
}

/// A decoded line: the envelope's fields, the body still undecoded.
public struct Envelope: Sendable {
    public var version: Int
    public var id: Int?
    public var re: Int?
    public var type: String
    public var error: WireError?
    /// The whole line, for decoding the body with the type the message type implies.
    let line: [UInt8]

    /// Decodes `body` as `T`; a missing body decodes as `{}`.
    public func body<T: Decodable>(_ type: T.Type) throws(WireError) -> T {
        do {
            return try Wire.decoder.decode(Body<T>.self, from: Data(line)).body
        } catch let DecodingError.keyNotFound(key, ctx) where ctx.codingPath.isEmpty && key.stringValue == "body" {
            do { return try Wire.decoder.decode(T.self, from: Data("{}".utf8)) } catch {
                throw WireError(.badRequest, "\(self.type): the message needs a body")
            }
        } catch {
            throw WireError(.badRequest, "\(self.type): \(WireDecoder.describe(error))")
        }
    }

    struct Body<T: Decodable>: Decodable { var body: T }
}

/// Turns lines into envelopes, refusing what is not one.
public enum WireDecoder {
    /// Nesting deeper than this is refused before any JSON parser sees it.
    public static let maxDepth = 32

    struct Header: Decodable {
        var v: Int?
        var id: Int?
        var re: Int?
        var type: String?
        var error: WireError?
    }

    public static func decode(_ line: [UInt8]) throws(WireError) -> Envelope {
        guard line.first(where: { $0 != 0x20 && $0 != 0x09 }) == UInt8(ascii: "{") else {
            throw WireError(.malformed, "a line must be one JSON object")
        }
        try checkDepth(line)
        let h: Header
        do {
            h = try Wire.decoder.decode(Header.self, from: Data(line))
        } catch {
            throw WireError(.malformed, "not a protocol envelope: \(describe(error))")
        }
        guard let v = h.v else { throw WireError(.unsupportedVersion, "the envelope has no version (\"v\")") }
        guard v == Wire.version else { throw WireError(.unsupportedVersion, "protocol version \(v) is not supported (this side speaks \(Wire.version))") }
        guard let type = h.type, !type.isEmpty, type.utf8.count <= 64 else {
            throw WireError(.malformed, "the envelope has no type")
        }
        if let id = h.id, id < 0 { throw WireError(.malformed, "negative request id") }
        return Envelope(version: v, id: h.id, re: h.re, type: type, error: h.error, line: line)
    }

    /// Refuses nesting deeper than `maxDepth` and control bytes outside strings.
    static func checkDepth(_ line: [UInt8]) throws(WireError) {
        var depth = 0
        var inString = false
        var escaped = false
        for b in line {
            if inString {
                if escaped { escaped = false } else if b == 0x5c { escaped = true } else if b == 0x22 { inString = false }
                else if b < 0x20 { throw WireError(.malformed, "control character in a string") }
                continue
            }
            switch b {
            case 0x22: inString = true
            case 0x7b, 0x5b:
                depth += 1
                if depth > maxDepth { throw WireError(.malformed, "nested deeper than \(maxDepth) levels") }
            case 0x7d, 0x5d: depth -= 1
            case 0x20, 0x09, 0x0d: break
            case ..<0x20: throw WireError(.malformed, "control character outside a string")
            default: break
            }
        }
    }

    /// A decoding error as one line (the coding path and what was wrong).
    static func describe(_ error: any Error) -> String {
        func path(_ p: [any CodingKey]) -> String {
            let s = p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return s.isEmpty ? "" : s + ": "
        }
        switch error {
        case DecodingError.keyNotFound(let k, let c): return "\(path(c.codingPath))missing \"\(k.stringValue)\""
        case DecodingError.typeMismatch(_, let c): return "\(path(c.codingPath))\(c.debugDescription)"
        case DecodingError.valueNotFound(_, let c): return "\(path(c.codingPath))\(c.debugDescription)"
        case DecodingError.dataCorrupted(let c): return "\(path(c.codingPath))\(c.debugDescription)"
        default: return "\(error)"
        }
    }
}

/// Writes envelopes as lines.
public enum WireEncoder {
    struct Out<B: Encodable>: Encodable {
        var v = Wire.version
        var id: Int?
        var re: Int?
        var type: String
        var body: B?
        var error: WireError?
    }

    struct Empty: Codable {}

    public static func request<B: Encodable>(_ type: String, id: Int?, _ body: B) -> [UInt8] {
        line(Out(id: id, type: type, body: body))
    }

    public static func reply<B: Encodable>(to id: Int, _ body: B) -> [UInt8] {
        line(Out(re: id, type: "reply", body: body))
    }

    public static func error(to id: Int?, _ error: WireError) -> [UInt8] {
        line(Out<Empty>(re: id, type: "error", body: nil, error: error))
    }

    static func line<B: Encodable>(_ out: Out<B>) -> [UInt8] {
        do {
            var bytes = try Wire.encodeJSON(out)
            bytes.append(0x0a)
            return bytes
        } catch {
            // Encoding our own value types cannot fail for data we built; say so on the wire if it does.
            let fallback = Out<Empty>(id: nil, re: out.id ?? out.re, type: "error", body: nil,
                                      error: WireError(.internalError, "cannot encode \(out.type)"))
            return ((try? Wire.encodeJSON(fallback)) ?? []) + [0x0a]
        }
    }
}

/// Splits a byte stream into lines of at most `maxLine` bytes. A longer line
/// is reported once (`.tooLong`) and skipped up to its newline, so a peer that
/// never sends one cannot make the receiver buffer without bound.
public struct LineFramer: Sendable {
    public enum Event: Equatable, Sendable {
        case line([UInt8])
        case tooLong
    }

    public let maxLine: Int
    private var buffer: [UInt8] = []
    private var scanned = 0
    private var discarding = false

    public init(maxLine: Int = Wire.defaultMaxLine) { self.maxLine = max(64, maxLine) }

    /// Bytes held for an unfinished line.
    public var pending: Int { buffer.count }

    public mutating func push(_ bytes: some Collection<UInt8>) -> [Event] {
        var events: [Event] = []
        buffer.append(contentsOf: bytes)
        var start = 0
        var i = scanned
        while i < buffer.count {
            if buffer[i] == 0x0a {
                if discarding {
                    discarding = false
                } else {
                    var end = i
                    if end > start && buffer[end - 1] == 0x0d { end -= 1 }
                    if end > start { events.append(.line(Array(buffer[start..<end]))) }
                }
                start = i + 1
            } else if !discarding && i - start >= maxLine {
                events.append(.tooLong)
                discarding = true
            }
            i += 1
        }
        if discarding {
            buffer.removeAll(keepingCapacity: buffer.count < 1 << 16)
            scanned = 0
        } else {
            if start > 0 { buffer.removeFirst(start) }
            scanned = buffer.count
        }
        return events
    }
}
