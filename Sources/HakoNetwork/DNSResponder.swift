#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem
import Synchronization

/// Service names in the cluster: a small authoritative DNS responder (UDP, A
/// records) that an agent runs on each of its node's bridge gateways, inside
/// the node's network namespace, and feeds from the coordinator's task list.
/// It answers each query from the names its source may see (`DNSViews`: the
/// names of the networks the querying container is on).
///
///     let dns = try DNSResponder.start(namespace: nil, address: gateway, upstreams: hostResolvers,
///                                      records: ["web": [10.88.1.2, 10.88.2.2], "web.1": [10.88.1.2]])
///     dns.update(records: newRecords)   // atomically, at any time, from any thread
///     dns.stop()
///
/// A name it holds is answered with all its addresses, rotated on every query
/// (round robin), TTL `ttl` (0 by default: answers follow tasks as they move).
/// A name it holds with another type (AAAA …) gets an empty NOERROR answer. Other
/// names go to the upstream resolvers (the host's, given by the caller), one
/// after the other per query, and the upstream's answer is relayed; without
/// upstreams they get NXDOMAIN. Names are matched without case and without the
/// trailing dot. One thread of its own serves the socket (and keeps the
/// responder alive until `stop()`); queries it cannot parse get FORMERR (or
/// nothing, if not even a header), answers are ignored.
public struct DNSUpstream: Sendable, Hashable {
    public var ip: IPv4Address
    public var port: UInt16
    public init(ip: IPv4Address, port: UInt16 = 53) { self.ip = ip; self.port = port }
}

public final class DNSResponder: @unchecked Sendable {
    /// What to do with one datagram (pure: unit-tested).
    public enum Decision: Equatable {
        case reply([UInt8])
        case forward(DNSQuery)
        case drop
    }

    public let address: IPv4Address
    /// The port bound (the one asked for, or the kernel's choice for 0).
    public let port: UInt16
    public let ttl: UInt32
    let upstreams: [DNSUpstream]
    private let server: FileDescriptor
    private let upstreamSocket: FileDescriptor?
    private let records: Mutex<(views: DNSViews, turn: Int)>
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)

    private init(server: FileDescriptor, upstreamSocket: FileDescriptor?, address: IPv4Address, port: UInt16,
                 upstreams: [DNSUpstream], records: [String: [IPv4Address]], ttl: UInt32) {
        self.server = server; self.upstreamSocket = upstreamSocket; self.address = address; self.port = port
        self.upstreams = upstreams; self.ttl = ttl
        self.records = Mutex((DNSViews(records: records), 0))
    }

    /// Binds `address:port` (UDP) in the network namespace `namespace` (nil: the
    /// caller's) and starts serving. `beforeTheAddress`: the address need not be
    /// on a link yet (IP_FREEBIND): queries are served from the moment it is —
    /// a bridge made with the container that asks first.
    public static func start(namespace: FileDescriptor?, address: IPv4Address, port: UInt16 = 53, upstreams: [DNSUpstream] = [],
                             records: [String: [IPv4Address]] = [:], ttl: UInt32 = 0, beforeTheAddress: Bool = false) throws -> DNSResponder {
        let server = try udpSocket(namespace: namespace)
        if beforeTheAddress {
            var on: Int32 = 1
            if setsockopt(server.rawValue, Int32(IPPROTO_IP), IP_FREEBIND, &on, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                throw SystemError("dns: IP_FREEBIND", errno: errno)
            }
        }
        let bound = try bind(server, address, port)
        let up = upstreams.isEmpty ? nil : try udpSocket(namespace: namespace)
        if let up { _ = try bind(up, IPv4Address(0), 0) }
        let r = DNSResponder(server: server, upstreamSocket: up, address: address, port: bound, upstreams: upstreams, records: records, ttl: ttl)
        try r.launch()
        return r
    }

    /// Replaces every record at once: one view for every querier.
    public func update(records new: [String: [IPv4Address]]) { update(views: DNSViews(records: new)) }

    /// Replaces the views at once: each query is answered from its source's (`DNSViews`).
    public func update(views new: DNSViews) {
        records.withLock { $0.views = new }
    }

    /// The names a query from `source` is answered from now.
    public func currentRecords(for source: IPv4Address = IPv4Address(0)) -> [String: [IPv4Address]] {
        records.withLock { $0.views.records(for: source) }
    }

    /// Stops serving and closes the sockets; waits for the thread.
    public func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if let t = thread.withLock({ $0 }) { pthread_join(t, nil) }
        server.close()
        upstreamSocket?.close()
    }

    /// The decision for one datagram, given the records and a turn for the
    /// rotation; `withheld`: names not forwarded (another network's).
    public static func decide(_ packet: [UInt8], records: [String: [IPv4Address]], turn: Int, ttl: UInt32, forwarding: Bool,
                              withheld: Set<String> = []) -> Decision {
        let q: DNSQuery
        do {
            q = try DNSMessage.parseQuery(packet)
        } catch {
            guard error != .notAQuery, let h = DNSMessage.header(packet) else { return .drop }
            return .reply(DNSMessage.error(id: h.id, flags: h.flags, rcode: .formatError))
        }
        if q.opcode != 0 {
            return .reply(DNSMessage.answer(q, rcode: .notImplemented, addresses: [], ttl: 0, recursionAvailable: forwarding))
        }
        if let addrs = records[q.question.name], q.question.qclass == DNSMessage.classIN || q.question.qclass == DNSMessage.typeANY {
            let wanted = q.question.type == DNSMessage.typeA || q.question.type == DNSMessage.typeANY
            var list = wanted ? addrs : []
            if list.count > 1 { let k = turn % list.count; list = Array(list[k...] + list[..<k]) }
            return .reply(DNSMessage.answer(q, rcode: .noError, addresses: list, ttl: ttl, recursionAvailable: forwarding))
        }
        if forwarding && q.recursionDesired && !withheld.contains(q.question.name) { return .forward(q) }
        return .reply(DNSMessage.answer(q, rcode: .nameError, addresses: [], ttl: 0, recursionAvailable: forwarding))
    }

    // MARK: - sockets and the serving thread

    static func udpSocket(namespace: FileDescriptor?) throws -> FileDescriptor {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = namespace.map { hako_socket_in_netns($0.rawValue, AF_INET, type, 0) } ?? socket(AF_INET, type, 0)
        if fd < 0 { throw SystemError("dns: socket", errno: namespace == nil ? errno : -fd) }
        return FileDescriptor(fd)
    }

    static func sockaddr(_ ip: IPv4Address, _ port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = ip.value.bigEndian
        return sa
    }

    static func bind(_ fd: FileDescriptor, _ ip: IPv4Address, _ port: UInt16) throws -> UInt16 {
        var sa = sockaddr(ip, port)
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
            Glibc.bind(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r < 0 { throw SystemError("dns: bind \(ip):\(port)", errno: errno) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
            getsockname(fd.rawValue, $0, &len) } }
        return UInt16(bigEndian: sa.sin_port)
    }

    private final class Box: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private func launch() throws {
        var tid = pthread_t()
        let box = Unmanaged.passRetained(Box { [self] in self.serve() }).toOpaque()
        let rc = pthread_create(&tid, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError("dns: thread", errno: rc)
        }
        thread.withLock { $0 = tid }
    }

    private struct Pending { var client: sockaddr_in; var id: UInt16; var deadline: UInt64 }

    /// Polls the two sockets until stopped (checking every 200 ms).
    private func serve() {
        var buf = [UInt8](repeating: 0, count: 4096)
        var pending: [UInt16: Pending] = [:]
        var nextUpstream = 0
        while !stopping.load(ordering: .acquiring) {
            var fds = [pollfd(fd: server.rawValue, events: Int16(POLLIN), revents: 0)]
            if let u = upstreamSocket { fds.append(pollfd(fd: u.rawValue, events: Int16(POLLIN), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), 200)
            let now = monotonicNanoseconds()
            pending = pending.filter { $0.value.deadline > now }
            if n <= 0 { continue }
            if fds[0].revents & Int16(POLLIN) != 0, let (data, from) = receive(server, &buf) {
                let source = IPv4Address(UInt32(bigEndian: from.sin_addr.s_addr))
                let decision = records.withLock { state -> Decision in
                    state.turn &+= 1
                    return DNSResponder.decide(data, records: state.views.records(for: source), turn: state.turn, ttl: ttl,
                                               forwarding: upstreamSocket != nil, withheld: state.views.known)
                }
                switch decision {
                case .reply(let bytes): send(server, bytes, to: from)
                case .drop: break
                case .forward(let q):
                    guard let u = upstreamSocket, pending.count < 1024 else {
                        send(server, DNSMessage.answer(q, rcode: .serverFailure, addresses: [], ttl: 0, recursionAvailable: true), to: from)
                        continue
                    }
                    var id = UInt16.random(in: 0...UInt16.max)
                    for _ in 0..<16 where pending[id] != nil { id = UInt16.random(in: 0...UInt16.max) }
                    pending[id] = Pending(client: from, id: q.id, deadline: now + 3_000_000_000)
                    var out = data
                    out[0] = UInt8(id >> 8); out[1] = UInt8(id & 0xff)
                    let up = upstreams[nextUpstream % upstreams.count]
                    nextUpstream &+= 1
                    send(u, out, to: DNSResponder.sockaddr(up.ip, up.port))
                }
            }
            if fds.count > 1, fds[1].revents & Int16(POLLIN) != 0, let u = upstreamSocket, let (data, from) = receive(u, &buf) {
                // Only from an upstream asked, only for a query still waiting.
                let source = IPv4Address(UInt32(bigEndian: from.sin_addr.s_addr))
                let sport = UInt16(bigEndian: from.sin_port)
                guard data.count >= 12, upstreams.contains(DNSUpstream(ip: source, port: sport)) else { continue }
                let id = UInt16(data[0]) << 8 | UInt16(data[1])
                guard let p = pending.removeValue(forKey: id) else { continue }
                var out = data
                out[0] = UInt8(p.id >> 8); out[1] = UInt8(p.id & 0xff)
                send(server, out, to: p.client)
            }
        }
    }

    private func receive(_ fd: FileDescriptor, _ buf: inout [UInt8]) -> ([UInt8], sockaddr_in)? {
        var from = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = buf.withUnsafeMutableBytes { b in
            withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                recvfrom(fd.rawValue, b.baseAddress, b.count, Int32(MSG_DONTWAIT), $0, &len) } }
        }
        guard n > 0 else { return nil }
        return (Array(buf[0..<n]), from)
    }

    private func send(_ fd: FileDescriptor, _ bytes: [UInt8], to addr: sockaddr_in) {
        var a = addr
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &a) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                sendto(fd.rawValue, b.baseAddress, b.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
    }
}
