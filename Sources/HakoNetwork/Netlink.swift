#if canImport(Glibc)
import Glibc
#endif
import CMnl
import HakoSystem

/// One netlink request: the message bytes (sequence number 0, patched by the
/// transport) and the operation it performs, named for errors.
public struct NetlinkRequest: Sendable, Equatable {
    public var bytes: [UInt8]
    public var operation: String

    public init(bytes: [UInt8], operation: String) { self.bytes = bytes; self.operation = operation }

    public var type: UInt16 { UInt16(bytes[4]) | UInt16(bytes[5]) << 8 }
    public var flags: UInt16 { UInt16(bytes[6]) | UInt16(bytes[7]) << 8 }
}

/// A kernel refusal of a netlink request, typed by what went wrong.
public struct NetlinkError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case exists, notFound, busy, permission, invalid, unsupported, other }
    public var operation: String
    public var errno: Int32

    public init(operation: String, errno: Int32) { self.operation = operation; self.errno = errno }

    public var kind: Kind {
        switch errno {
        case EEXIST: return .exists
        case ENOENT, ENODEV, ESRCH, EADDRNOTAVAIL: return .notFound
        case EBUSY: return .busy
        case EPERM, EACCES: return .permission
        case EINVAL, ERANGE: return .invalid
        case EOPNOTSUPP, EAFNOSUPPORT, EPROTONOSUPPORT: return .unsupported
        default: return .other
        }
    }

    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// Sends requests and returns the kernel's replies (messages before the ack).
/// The real one is `NetlinkSocket`; tests record requests instead.
public protocol NetlinkTransport: AnyObject {
    func perform(_ request: NetlinkRequest) throws -> [[UInt8]]
    /// The requests in one exchange, each acked: every one is handled, also
    /// after one fails; the first failure not in `tolerating` (errnos) is thrown.
    func performBatch(_ requests: [NetlinkRequest], operation: String, tolerating: [Int32]) throws
}

extension NetlinkTransport {
    /// One request at a time (a transport that cannot send several at once).
    public func performBatch(_ requests: [NetlinkRequest], operation: String, tolerating: [Int32]) throws {
        var failure: NetlinkError?
        for r in requests {
            do { _ = try perform(r) } catch let e as NetlinkError {
                if failure == nil && !tolerating.contains(e.errno) { failure = e }
            }
        }
        if let failure { throw failure }
    }
}

/// Builds one netlink message with libmnl in a private buffer.
struct MessageBuilder {
    static let capacity = Int(HAKO_MNL_SOCKET_BUFFER_SIZE)
    private(set) var buffer: UnsafeMutableRawPointer
    private(set) var nlh: UnsafeMutablePointer<nlmsghdr>
    /// Set when an attribute did not fit; building then yields nothing.
    private(set) var overflow = false

    init<T: BinaryInteger>(type: T, flags: Int32) {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: MessageBuilder.capacity, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: MessageBuilder.capacity)
        nlh = mnl_nlmsg_put_header(buffer)
        nlh.pointee.nlmsg_type = UInt16(truncatingIfNeeded: type)
        nlh.pointee.nlmsg_flags = UInt16(truncatingIfNeeded: flags)
        nlh.pointee.nlmsg_seq = 0
    }

    func free() { buffer.deallocate() }

    /// Appends a fixed header (ifinfomsg, ifaddrmsg, rtmsg, ndmsg …).
    mutating func extra<T>(_ value: T) {
        var v = value
        let p = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<T>.size)
        withUnsafeBytes(of: &v) { p?.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    private var room: Int { MessageBuilder.capacity }

    mutating func bytes<T: BinaryInteger>(_ type: T, _ data: [UInt8]) {
        let ok = data.withUnsafeBytes { mnl_attr_put_check(nlh, room, UInt16(truncatingIfNeeded: type), data.count, $0.baseAddress) }
        if !ok { overflow = true }
    }
    mutating func u8<T: BinaryInteger>(_ type: T, _ v: UInt8) { if !mnl_attr_put_u8_check(nlh, room, UInt16(truncatingIfNeeded: type), v) { overflow = true } }
    mutating func u16<T: BinaryInteger>(_ type: T, _ v: UInt16) { if !mnl_attr_put_u16_check(nlh, room, UInt16(truncatingIfNeeded: type), v) { overflow = true } }
    mutating func u32<T: BinaryInteger>(_ type: T, _ v: UInt32) { if !mnl_attr_put_u32_check(nlh, room, UInt16(truncatingIfNeeded: type), v) { overflow = true } }
    mutating func string<T: BinaryInteger>(_ type: T, _ s: String) {
        if !mnl_attr_put_strz_check(nlh, room, UInt16(truncatingIfNeeded: type), s) { overflow = true }
    }
    /// A 16-bit value in network byte order (ports).
    mutating func be16<T: BinaryInteger>(_ type: T, _ v: UInt16) { bytes(type, [UInt8(v >> 8), UInt8(v & 0xff)]) }

    mutating func nest<T: BinaryInteger>(_ type: T, _ body: (inout MessageBuilder) -> Void) {
        guard let start = mnl_attr_nest_start_check(nlh, room, UInt16(truncatingIfNeeded: type)) else { overflow = true; return }
        body(&self)
        mnl_attr_nest_end(nlh, start)
    }

    /// The finished message; frees the buffer.
    func finish(_ operation: String) throws -> NetlinkRequest {
        defer { free() }
        if overflow { throw NetlinkError(operation: operation, errno: EMSGSIZE) }
        let n = Int(nlh.pointee.nlmsg_len)
        return NetlinkRequest(bytes: Array(UnsafeRawBufferPointer(start: buffer, count: n)), operation: operation)
    }
}

/// Attributes of a received message, by type (top level only; nests are parsed on demand).
public struct NetlinkAttributes: Sendable {
    public var values: [UInt16: [UInt8]] = [:]

    /// Parses attributes from `bytes` starting at `offset`.
    public init(_ bytes: [UInt8], offset: Int) {
        var o = offset
        while o + 4 <= bytes.count {
            let len = Int(UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8)
            let type = (UInt16(bytes[o + 2]) | UInt16(bytes[o + 3]) << 8) & 0x3fff
            guard len >= 4, o + len <= bytes.count else { break }
            values[type] = Array(bytes[(o + 4)..<(o + len)])
            o += (len + 3) & ~3
        }
    }

    public func string<T: BinaryInteger>(_ type: T) -> String? {
        guard let v = values[UInt16(truncatingIfNeeded: type)] else { return nil }
        return String(decoding: v.prefix { $0 != 0 }, as: UTF8.self)
    }

    public func u32<T: BinaryInteger>(_ type: T) -> UInt32? {
        guard let v = values[UInt16(truncatingIfNeeded: type)], v.count >= 4 else { return nil }
        return UInt32(v[0]) | UInt32(v[1]) << 8 | UInt32(v[2]) << 16 | UInt32(v[3]) << 24
    }
}

/// Splits a datagram into its netlink messages.
func splitMessages(_ data: [UInt8]) -> [[UInt8]] {
    var out: [[UInt8]] = []
    var o = 0
    while o + 16 <= data.count {
        let len = Int(UInt32(data[o]) | UInt32(data[o + 1]) << 8 | UInt32(data[o + 2]) << 16 | UInt32(data[o + 3]) << 24)
        guard len >= 16, o + len <= data.count else { break }
        out.append(Array(data[o..<(o + len)]))
        o += (len + 3) & ~3
    }
    return out
}
