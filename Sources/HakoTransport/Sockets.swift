#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// TCP sockets: resolving, listening, accepting and connecting with a time
/// bound. The sockets are non-blocking (for poll loops) unless said otherwise;
/// `TCPConnection` makes blocking ones with timeouts of them.
public enum Sockets {
    public static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    public static func setBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
    }

    /// Read and write timeouts of a blocking socket (0: none).
    public static func setTimeouts(_ fd: Int32, _ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// "host:port" ("[v6]:port") for messages.
    public static func name(host: String, port: UInt16) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The socket addresses `host` resolves to, in the resolver's order. A
    /// name is looked up only among the families this host has addresses of;
    /// a numeric address is taken as it is.
    static func resolve(host: String, port: UInt16, passive: Bool) throws(TransportError) -> [(family: Int32, address: [UInt8])] {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) | (TLSConnection.isIPAddress(bare) ? 0 : AI_ADDRCONFIG)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(bare, String(port), &hints, &list)
        guard rc == 0, let first = list else { throw .resolve(host: bare, reason: String(cString: gai_strerror(rc))) }
        defer { freeaddrinfo(first) }
        var out: [(Int32, [UInt8])] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            if let sa = ai.pointee.ai_addr {
                out.append((ai.pointee.ai_family, Array(UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen)))))
            }
            cursor = ai.pointee.ai_next
        }
        return out
    }

    /// A non-blocking listening socket on `host` ("0.0.0.0": every address) and `port` (0: any).
    public static func listen(host: String, port: UInt16, backlog: Int32 = 128) throws(TransportError) -> FileDescriptor {
        let peer = name(host: host, port: port)
        var lastError = "no address"
        for (family, address) in try resolve(host: host, port: port, passive: true) {
            let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if s < 0 { lastError = String(cString: strerror(errno)); continue }
            let fd = FileDescriptor(s)
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let rc = address.withUnsafeBytes { Glibc.bind(s, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count)) }
            if rc != 0 { lastError = String(cString: strerror(errno)); continue }
            if Glibc.listen(s, backlog) != 0 { lastError = String(cString: strerror(errno)); continue }
            return fd
        }
        throw .listen(address: peer, reason: lastError)
    }

    /// Connects to the first address of `host` that answers, each address
    /// given `timeout` seconds; the socket is left non-blocking, with small
    /// writes sent at once (no Nagle). All refused: `.connect` with the last
    /// reason; the last one timed out: `.timeout`.
    public static func connect(host: String, port: UInt16, timeout: Double) throws(TransportError) -> FileDescriptor {
        let peer = name(host: host, port: port)
        var last = TransportError.connect(peer: peer, reason: "no address")
        for (family, address) in try resolve(host: host, port: port, passive: false) {
            switch beginConnect(family, address, peer: peer) {
            case .failure(let e): last = e
            case .success(let (fd, connected)):
                if !connected, let failure = waitConnected(fd.rawValue, timeout: timeout, peer: peer) { last = failure; continue }
                noDelay(fd.rawValue)
                return fd
            }
        }
        throw last
    }

    /// Starts a connection without waiting (the socket non-blocking): the
    /// first resolved address whose connect starts. `connected` is false
    /// while it is under way: the socket turns writable when it ends, and
    /// `connectError` says how. For a caller that asks several peers at once
    /// from its poll loop.
    public static func startConnect(host: String, port: UInt16) throws(TransportError) -> (fd: FileDescriptor, connected: Bool) {
        let peer = name(host: host, port: port)
        var last = TransportError.connect(peer: peer, reason: "no address")
        for (family, address) in try resolve(host: host, port: port, passive: false) {
            switch beginConnect(family, address, peer: peer) {
            case .failure(let e): last = e
            case .success(let (fd, connected)):
                if connected { noDelay(fd.rawValue) }
                return (fd, connected)
            }
        }
        throw last
    }

    /// A non-blocking socket of `family` whose connect to `address` has
    /// begun: done at once (true) or under way (false); or why not.
    private static func beginConnect(_ family: Int32, _ address: [UInt8], peer: String) -> Result<(FileDescriptor, Bool), TransportError> {
        let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if s < 0 { return .failure(.connect(peer: peer, reason: String(cString: strerror(errno)))) }
        let fd = FileDescriptor(s)
        let rc = address.withUnsafeBytes { Glibc.connect(s, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count)) }
        if rc == 0 { return .success((fd, true)) }
        guard errno == EINPROGRESS else { return .failure(.connect(peer: peer, reason: String(cString: strerror(errno)))) }
        return .success((fd, false))
    }

    /// How a connect started by `startConnect` ended, once its socket is
    /// writable: nil when connected (small writes then sent at once), else why not.
    public static func connectError(_ fd: FileDescriptor) -> String? {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { err = errno }
        guard err == 0 else { return String(cString: strerror(err)) }
        noDelay(fd.rawValue)
        return nil
    }

    /// Waits for a non-blocking connect: nil once connected, else why not.
    private static func waitConnected(_ s: Int32, timeout: Double, peer: String) -> TransportError? {
        var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
        let deadline = monotonicSeconds() + timeout
        while true {
            let left = Int32(max(0, (deadline - monotonicSeconds()) * 1000).rounded(.up))
            let n = poll(&p, 1, left)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .connect(peer: peer, reason: String(cString: strerror(errno))) }
            if n == 0 { return .timeout(peer: peer, what: "connecting") }
            break
        }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len)
        return err == 0 ? nil : .connect(peer: peer, reason: String(cString: strerror(err)))
    }

    /// Accepts one connection, non-blocking and close-on-exec (atomically:
    /// an agent spawns containers meanwhile), small writes sent at once; nil
    /// when none is waiting. With the peer's "host:port".
    public static func accept(_ listener: FileDescriptor) -> (FileDescriptor, String)? {
        let s = hako_accept_cloexec(listener.rawValue)
        guard s >= 0 else { return nil }
        let fd = FileDescriptor(s)
        setNonBlocking(s)
        noDelay(s)
        return (fd, peerAddress(fd))
    }

    static func noDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Linux 6.15's TCP_RTO_MAX_MS (not in older headers): the longest
    /// retransmission timeout. Its smallest allowed value is 1 s.
    static let tcpRTOMaxMs: Int32 = 44

    /// A segment lost to a blip is retried at least every `seconds` (≥ 1)
    /// instead of after TCP's doubling backoff (0.2, 0.4, 0.8, 1.6, 3.2 s…),
    /// for a peer that must hear small messages on time (heartbeats). Kernels
    /// before 6.15 refuse the option (ENOPROTOOPT): false.
    @discardableResult
    public static func boundRetransmissions(_ fd: Int32, seconds: Double = 1) -> Bool {
        var ms = Int32(max(1, seconds) * 1000)
        return setsockopt(fd, Int32(IPPROTO_TCP), tcpRTOMaxMs, &ms, socklen_t(MemoryLayout<Int32>.size)) == 0
    }

    static func describe(_ storage: sockaddr_storage) -> String {
        var s = storage
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(MemoryLayout<sockaddr_storage>.size), &host, socklen_t(host.count), &serv, socklen_t(serv.count),
                            NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return "?" }
        let h = cString(host)
        return h.contains(":") ? "[\(h)]:\(cString(serv))" : "\(h):\(cString(serv))"
    }

    private static func address(_ fd: FileDescriptor, peer: Bool) -> sockaddr_storage? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd.rawValue, $0, &len) : getsockname(fd.rawValue, $0, &len) }
        }
        return rc == 0 ? storage : nil
    }

    /// The socket's own address, "host:port" ("?" when unknown).
    public static func localAddress(_ fd: FileDescriptor) -> String { address(fd, peer: false).map(describe) ?? "?" }

    /// The peer's address, "host:port" ("?" when unknown).
    public static func peerAddress(_ fd: FileDescriptor) -> String { address(fd, peer: true).map(describe) ?? "?" }

    /// The port a socket is bound to (a listener's on port 0).
    public static func localPort(_ fd: FileDescriptor) -> UInt16 {
        guard var storage = address(fd, peer: false) else { return 0 }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { p -> UInt16 in
            if family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }
}
