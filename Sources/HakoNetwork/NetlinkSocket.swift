#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import CMnl
import HakoSystem

/// A netlink socket (libmnl) in the caller's network namespace or in another
/// one. Requests are sent one at a time and wait for the kernel's ack.
public final class NetlinkSocket: NetlinkTransport, @unchecked Sendable {
    private let nl: OpaquePointer
    private let portID: UInt32
    private var seq: UInt32

    /// `netlinkProtocol`: NETLINK_ROUTE or NETLINK_NETFILTER. `namespace`: an
    /// open network namespace file; nil for the caller's own.
    public convenience init(protocol netlinkProtocol: Int32 = NETLINK_ROUTE, namespace: FileDescriptor? = nil) throws {
        if let ns = namespace {
            let fd = hako_socket_in_netns(ns.rawValue, AF_NETLINK, Int32(SOCK_RAW.rawValue), netlinkProtocol)
            if fd < 0 { throw SystemError("netlink socket in namespace", errno: -fd) }
            try self.init(adopting: fd)
        } else {
            guard let handle = mnl_socket_open2(netlinkProtocol, Int32(SOCK_CLOEXEC.rawValue)) else { throw SystemError("netlink socket") }
            try self.init(handle: handle)
        }
    }

    /// Makes a network namespace, pins it at `path` (an empty file) and opens
    /// a route netlink socket in it, all on one short-lived thread
    /// (`hako_netns_create`): the socket's fd, or -errno.
    static func routeSocketOfNewNamespace(pinnedAt path: String) -> Int32 {
        hako_netns_create(path, AF_NETLINK, Int32(SOCK_RAW.rawValue), NETLINK_ROUTE)
    }

    /// Takes over `fd`, an unbound netlink socket (closed if this fails).
    public convenience init(adopting fd: Int32) throws {
        guard let handle = mnl_socket_fdopen(fd) else {
            let e = errno
            Glibc.close(fd)
            throw SystemError("netlink socket", errno: e)
        }
        try self.init(handle: handle)
    }

    private init(handle: OpaquePointer) throws {
        if mnl_socket_bind(handle, 0, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            let e = errno
            mnl_socket_close(handle)
            throw SystemError("netlink bind", errno: e)
        }
        nl = handle
        portID = mnl_socket_get_portid(handle)
        seq = UInt32(truncatingIfNeeded: monotonicNanoseconds() & 0x7fff_ffff)
    }

    deinit { mnl_socket_close(nl) }

    public func perform(_ request: NetlinkRequest) throws -> [[UInt8]] {
        seq &+= 1
        var bytes = request.bytes
        patch(&bytes, at: 0, seq: seq)
        let expected = (request.flags & UInt16(NLM_F_ACK)) != 0 ? 1 : 0
        return try exchange(bytes, operation: request.operation, acks: expected, firstSeq: seq, lastSeq: seq)
    }

    /// Sends a batch of messages in one datagram: one ack per message that
    /// asked for one. The kernel handles every message of it, also after one
    /// fails; the first failure not in `tolerating` (errnos) is thrown.
    public func performBatch(_ messages: [NetlinkRequest], operation: String, tolerating: [Int32] = []) throws {
        var bytes: [UInt8] = []
        var acks = 0
        let first = seq &+ 1
        for m in messages {
            seq &+= 1
            var b = m.bytes
            patch(&b, at: 0, seq: seq)
            if (m.flags & UInt16(NLM_F_ACK)) != 0 { acks += 1 }
            bytes += b
            while bytes.count % 4 != 0 { bytes.append(0) }
        }
        _ = try exchange(bytes, operation: operation, acks: acks, firstSeq: first, lastSeq: seq, tolerating: tolerating)
    }

    private func patch(_ b: inout [UInt8], at o: Int, seq: UInt32) {
        b[o + 8] = UInt8(seq & 0xff); b[o + 9] = UInt8((seq >> 8) & 0xff)
        b[o + 10] = UInt8((seq >> 16) & 0xff); b[o + 11] = UInt8(seq >> 24)
    }

    private func exchange(_ bytes: [UInt8], operation: String, acks: Int, firstSeq: UInt32, lastSeq: UInt32,
                          tolerating: [Int32] = []) throws -> [[UInt8]] {
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(nl, $0.baseAddress, $0.count) }
        if sent < 0 { throw NetlinkError(operation: operation, errno: errno) }
        var replies: [[UInt8]] = []
        var got = 0
        var failure: NetlinkError?
        var done = acks == 0
        // A dump (no ack asked) ends with NLMSG_DONE.
        let dump = acks == 0
        if dump { done = false }
        var rounds = 0
        // Uninitialised: a zeroed 64 KiB array per request cost a memset and its page faults.
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65536) { buf in
            while !done && rounds < 100_000 {
                rounds += 1
                let n = mnl_socket_recvfrom(nl, buf.baseAddress, buf.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw NetlinkError(operation: operation, errno: errno)
                }
                for m in splitMessages(Array(buf[0..<n])) {
                    let type = UInt16(m[4]) | UInt16(m[5]) << 8
                    let mseq = UInt32(m[8]) | UInt32(m[9]) << 8 | UInt32(m[10]) << 16 | UInt32(m[11]) << 24
                    if lastSeq >= firstSeq && (mseq < firstSeq || mseq > lastSeq) { continue }
                    if type == UInt16(NLMSG_ERROR) {
                        guard m.count >= 20 else { continue }
                        let code = Int32(bitPattern: UInt32(m[16]) | UInt32(m[17]) << 8 | UInt32(m[18]) << 16 | UInt32(m[19]) << 24)
                        if code != 0 && failure == nil && !tolerating.contains(-code) { failure = NetlinkError(operation: operation, errno: -code) }
                        got += 1
                        if got >= acks && !dump { done = true }
                        if dump && code != 0 { done = true }
                    } else if type == UInt16(NLMSG_DONE) {
                        if dump { done = true }
                    } else {
                        replies.append(m)
                    }
                }
            }
        }
        if let failure { throw failure }
        return replies
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
