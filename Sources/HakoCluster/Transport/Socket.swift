#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// "host:port", "[v6]:port" or ":port" (all addresses).
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    public init(parsing s: String, defaultPort: UInt16? = nil) throws(ClusterError) {
        var host = s
        var portText: String?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw .invalid("invalid address \"\(s)\"") }
            host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            if rest.hasPrefix(":") { portText = String(rest.dropFirst()) } else if !rest.isEmpty { throw .invalid("invalid address \"\(s)\"") }
        } else if let colon = s.lastIndex(of: ":"), s.filter({ $0 == ":" }).count == 1 {
            host = String(s[..<colon])
            portText = String(s[s.index(after: colon)...])
        }
        let port: UInt16
        if let p = portText {
            guard let n = UInt16(p), n > 0 else { throw .invalid("invalid port in \"\(s)\"") }
            port = n
        } else if let d = defaultPort {
            port = d
        } else {
            throw .invalid("\"\(s)\" has no port (host:port)")
        }
        self.init(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The socket addresses the host resolves to (numeric hosts need no lookup).
    func resolve(passive: Bool) throws(ClusterError) -> [(family: Int32, addr: [UInt8])] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else {
            throw .network("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        var out: [(Int32, [UInt8])] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let a = p {
            if let sa = a.pointee.ai_addr {
                let bytes = Array(UnsafeRawBufferPointer(start: sa, count: Int(a.pointee.ai_addrlen)))
                out.append((a.pointee.ai_family, bytes))
            }
            p = a.pointee.ai_next
        }
        return out
    }
}

enum Sockets {
    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// A non-blocking listening socket.
    static func listen(_ ep: Endpoint) throws(ClusterError) -> FileDescriptor {
        var lastError = "no address"
        for (family, addr) in try ep.resolve(passive: true) {
            let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if s < 0 { lastError = String(cString: strerror(errno)); continue }
            let fd = FileDescriptor(s)
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let rc = addr.withUnsafeBytes { Glibc.bind(s, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count)) }
            if rc != 0 { lastError = String(cString: strerror(errno)); continue }
            if Glibc.listen(s, 128) != 0 { lastError = String(cString: strerror(errno)); continue }
            return fd
        }
        throw .network("cannot listen on \(ep): \(lastError)")
    }

    /// Connects with a time bound; the socket is left non-blocking.
    static func connect(_ ep: Endpoint, timeout: Double) throws(ClusterError) -> FileDescriptor {
        var lastError = "no address"
        for (family, addr) in try ep.resolve(passive: false) {
            let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if s < 0 { lastError = String(cString: strerror(errno)); continue }
            let fd = FileDescriptor(s)
            let rc = addr.withUnsafeBytes { Glibc.connect(s, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count)) }
            if rc == 0 { tuneStream(s); return fd }
            guard errno == EINPROGRESS else { lastError = String(cString: strerror(errno)); continue }
            var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
            let n = poll(&p, 1, Int32(max(1, timeout * 1000)))
            if n == 0 { lastError = "timed out after \(Durations.format(timeout))"; continue }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len)
            if n < 0 || err != 0 { lastError = String(cString: strerror(err != 0 ? err : errno)); continue }
            tuneStream(s)
            return fd
        }
        throw .network("cannot connect to \(ep): \(lastError)")
    }

    /// Starts a connection without waiting (the socket is non-blocking): the
    /// first resolved address whose connect starts. `connected` is false
    /// while it is under way: the socket turns writable when it ends, and
    /// `connectError` says how.
    static func startConnect(_ ep: Endpoint) throws(ClusterError) -> (fd: FileDescriptor, connected: Bool) {
        var lastError = "no address"
        for (family, addr) in try ep.resolve(passive: false) {
            let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if s < 0 { lastError = String(cString: strerror(errno)); continue }
            let fd = FileDescriptor(s)
            let rc = addr.withUnsafeBytes { Glibc.connect(s, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count)) }
            if rc == 0 { tuneStream(s); return (fd, true) }
            guard errno == EINPROGRESS else { lastError = String(cString: strerror(errno)); continue }
            return (fd, false)
        }
        throw .network("cannot connect to \(ep): \(lastError)")
    }

    /// How a connect started by `startConnect` ended, once its socket is
    /// writable: nil when connected (the stream then tuned), else why not.
    static func connectError(_ fd: FileDescriptor) -> String? {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { err = errno }
        guard err == 0 else { return String(cString: strerror(err)) }
        tuneStream(fd.rawValue)
        return nil
    }

    /// Linux 6.15's TCP_RTO_MAX_MS (not in older headers): the longest
    /// retransmission timeout. Its smallest allowed value is 1 s.
    static let tcpRTOMaxMs: Int32 = 44

    /// Small lines go out at once (no Nagle), and a segment lost to a blip is
    /// retried at least every second instead of TCP's doubling backoff (0.2,
    /// 0.4, 0.8, 1.6, 3.2 s…), which after a 2 s outage would hold a
    /// heartbeat back past the grace period. Kernels before 6.15 refuse the
    /// option (ENOPROTOOPT); there the agent's repeated beats carry the load.
    static func tuneStream(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var ms: Int32 = 1000
        _ = setsockopt(fd, Int32(IPPROTO_TCP), tcpRTOMaxMs, &ms, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Accepts one connection (non-blocking); nil when none is waiting.
    static func accept(_ listener: FileDescriptor) -> (FileDescriptor, String)? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let s = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.accept(listener.rawValue, $0, &len)
            }
        }
        guard s >= 0 else { return nil }
        // The coordinator spawns no programs, so the window before FD_CLOEXEC is harmless.
        _ = fcntl(s, F_SETFD, FD_CLOEXEC)
        setNonBlocking(s)
        tuneStream(s)
        return (FileDescriptor(s), describe(storage))
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

    /// The port a listening socket was given (for ":0" in tests).
    /// The socket's own address, "host:port".
    static func localAddress(_ fd: FileDescriptor) -> String {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &len) }
        }
        return describe(storage)
    }

    static func localPort(_ fd: FileDescriptor) -> UInt16 {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &len) }
        }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { p -> UInt16 in
            if family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }
}
