import HakoSystem

/// The DNS wire format as far as the service-name responder needs it (RFC 1035):
/// one question in, A records out. Parsing is defensive — every length is
/// checked, compression pointers may only point backwards (so they cannot
/// loop), names are at most 255 bytes of at most 63-byte labels — because any
/// container may send anything to the responder.
public struct DNSQuestion: Sendable, Equatable {
    /// Lower case, without the trailing dot ("web.hako").
    public var name: String
    public var type: UInt16
    public var qclass: UInt16
}

public struct DNSQuery: Sendable, Equatable {
    public var id: UInt16
    public var flags: UInt16
    public var question: DNSQuestion
    /// The question section's bytes as received (echoed in the answer).
    public var questionBytes: [UInt8]

    public var recursionDesired: Bool { flags & 0x0100 != 0 }
    public var opcode: UInt8 { UInt8((flags >> 11) & 0xf) }
}

public enum DNSMessage {
    public static let typeA: UInt16 = 1, typeANY: UInt16 = 255, classIN: UInt16 = 1
    public enum RCode: UInt16, Sendable { case noError = 0, formatError = 1, serverFailure = 2, nameError = 3, notImplemented = 4, refused = 5 }
    /// Without EDNS a UDP answer is at most 512 bytes.
    public static let maxUDPSize = 512

    public enum ParseError: Error, Equatable { case tooShort, notAQuery, questionCount, badName, truncated }

    static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }

    /// The header ID and flags of anything at least 12 bytes long (for an error answer).
    public static func header(_ b: [UInt8]) -> (id: UInt16, flags: UInt16)? {
        b.count >= 12 ? (u16(b, 0), u16(b, 2)) : nil
    }

    /// A query with exactly one question; answers (QR set) are refused so two
    /// responders can never talk to each other in a loop.
    public static func parseQuery(_ b: [UInt8]) throws(ParseError) -> DNSQuery {
        guard b.count >= 12 else { throw .tooShort }
        let flags = u16(b, 2)
        guard flags & 0x8000 == 0 else { throw .notAQuery }
        guard u16(b, 4) == 1 else { throw .questionCount }
        var o = 12
        let name = try readName(b, at: &o)
        guard o + 4 <= b.count else { throw .truncated }
        let q = DNSQuestion(name: name, type: u16(b, o), qclass: u16(b, o + 2))
        return DNSQuery(id: u16(b, 0), flags: flags, question: q, questionBytes: Array(b[12..<(o + 4)]))
    }

    /// Reads a (possibly compressed) name at `o`, leaving `o` after it in the message.
    static func readName(_ b: [UInt8], at o: inout Int) throws(ParseError) -> String {
        var labels: [String] = []
        var total = 0
        var p = o
        var jumped = false
        var hops = 0
        while true {
            guard p < b.count else { throw .truncated }
            let len = Int(b[p])
            if len & 0xc0 == 0xc0 {
                guard p + 1 < b.count else { throw .truncated }
                let target = (len & 0x3f) << 8 | Int(b[p + 1])
                // Only backwards, and a bounded number of times: no loops, no quadratic blow-up.
                guard target < p, hops < 64 else { throw .badName }
                hops += 1
                if !jumped { o = p + 2; jumped = true }
                p = target
                continue
            }
            guard len & 0xc0 == 0 else { throw .badName }
            if len == 0 {
                if !jumped { o = p + 1 }
                break
            }
            guard p + 1 + len <= b.count else { throw .truncated }
            total += len + 1
            guard total <= 255 else { throw .badName }
            let label = b[(p + 1)...(p + len)]
            labels.append(String(decoding: label.map { $0 >= 0x41 && $0 <= 0x5a ? $0 | 0x20 : $0 }, as: UTF8.self))
            p += 1 + len
        }
        return labels.joined(separator: ".")
    }

    /// A name in wire form (no compression); nil if a label is empty or too long.
    public static func encodeName(_ name: String) -> [UInt8]? {
        var out: [UInt8] = []
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        if trimmed.isEmpty { return [0] }
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(label.utf8)
            guard !bytes.isEmpty, bytes.count <= 63 else { return nil }
            out.append(UInt8(bytes.count))
            out += bytes
        }
        out.append(0)
        return out.count <= 255 ? out : nil
    }

    /// A query (the responder's own tests and tools use it).
    public static func query(id: UInt16, name: String, type: UInt16 = typeA, recursionDesired: Bool = true) -> [UInt8]? {
        guard let n = encodeName(name) else { return nil }
        return be16(id) + be16(recursionDesired ? 0x0100 : 0) + be16(1) + be16(0) + be16(0) + be16(0) + n + be16(type) + be16(classIN)
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    /// The answer to `q`: authoritative, the question echoed, one A record per
    /// address (the name compressed to the question's, offset 12), as many as fit
    /// in 512 bytes.
    public static func answer(_ q: DNSQuery, rcode: RCode, addresses: [IPv4Address], ttl: UInt32, recursionAvailable: Bool) -> [UInt8] {
        let room = (maxUDPSize - 12 - q.questionBytes.count) / 16
        let list = Array(addresses.prefix(max(0, room)))
        var flags: UInt16 = 0x8000 | 0x0400 | (q.flags & 0x7800) | (q.flags & 0x0100) | rcode.rawValue
        if recursionAvailable { flags |= 0x0080 }
        var out = be16(q.id) + be16(flags) + be16(1) + be16(UInt16(list.count)) + be16(0) + be16(0) + q.questionBytes
        for a in list { out += [0xc0, 0x0c] + be16(typeA) + be16(classIN) + be32(ttl) + be16(4) + a.bytes }
        return out
    }

    /// An error answer to a message that could not be parsed as a query (header only).
    public static func error(id: UInt16, flags: UInt16, rcode: RCode) -> [UInt8] {
        be16(id) + be16(0x8000 | (flags & 0x7900) | rcode.rawValue) + [0, 0, 0, 0, 0, 0, 0, 0]
    }

    /// The A records of an answer (tests, tools): nil if it is not a well-formed answer.
    public static func parseAnswer(_ b: [UInt8]) -> (id: UInt16, rcode: UInt16, addresses: [IPv4Address])? {
        guard b.count >= 12, u16(b, 2) & 0x8000 != 0 else { return nil }
        let qd = Int(u16(b, 4)), an = Int(u16(b, 6))
        var o = 12
        do {
            for _ in 0..<qd { _ = try readName(b, at: &o); o += 4 }
            var out: [IPv4Address] = []
            for _ in 0..<an {
                _ = try readName(b, at: &o)
                guard o + 10 <= b.count else { return nil }
                let type = u16(b, o), len = Int(u16(b, o + 8))
                o += 10
                guard o + len <= b.count else { return nil }
                if type == typeA && len == 4 {
                    out.append(IPv4Address(UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])))
                }
                o += len
            }
            return (u16(b, 0), u16(b, 2) & 0xf, out)
        } catch {
            return nil
        }
    }
}
