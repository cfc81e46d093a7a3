#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Where the service listens: a unix socket it makes, or the one systemd passes (socket activation).
public enum Listener {
    /// The socket systemd passed (LISTEN_FDS/LISTEN_PID, fd 3), if any.
    public static func fromSystemd() -> FileDescriptor? {
        guard let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }), Int32(pidText) == getpid(),
              let countText = getenv("LISTEN_FDS").map({ String(cString: $0) }), let n = Int(countText), n >= 1 else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        _ = fcntl(3, F_SETFD, FD_CLOEXEC)
        return FileDescriptor(3)
    }

    /// `unix:///run/hako/docker.sock` (or a plain path) → a listening socket,
    /// mode 0660, group `hako` when that group exists. A stale socket file (nobody
    /// listening) is replaced; a live one is an error.
    public static func unix(_ address: String) throws -> (FileDescriptor, String) {
        var path = address
        if path.hasPrefix("unix://") { path = String(path.dropFirst("unix://".count)) }
        guard path.hasPrefix("/") else {
            throw HakoError(.invalidArgument("--listen"), "invalid --listen \"\(address)\": expected unix:///absolute/path or tcp://HOST:PORT")
        }
        guard path.utf8.count < 108 else { throw HakoError(.invalidArgument("--listen"), "the socket path \(path) is longer than 107 bytes") }
        try FS.makeDirectories(FS.parentDirectory(path), mode: 0o755)
        let s = try sys("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let fd = FileDescriptor(s)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        func bindIt() -> Int32 {
            withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        }
        if bindIt() != 0 {
            guard errno == EADDRINUSE else { throw SystemError("bind", path) }
            if isListening(path) { throw HakoError(.conflict(.inUse(.address, path, by: [])), "\(path) is in use: another service listens on it") }
            try FS.unlinkIfPresent(path)
            try sys("bind", path) { bindIt() }
        }
        var gid: gid_t = 0
        if let g = getgrnam("hako") { gid = g.pointee.gr_gid }
        _ = chown(path, 0, gid)
        _ = chmod(path, 0o660)
        try sys("listen", path) { listen(s, 128) }
        return (fd, path)
    }

    /// `tcp://HOST:PORT` (an address or a name; `[::1]:PORT` for IPv6) → a
    /// listening TCP socket. Served only with mutual TLS (the caller's part).
    public static func tcp(_ address: String) throws -> FileDescriptor {
        guard address.hasPrefix("tcp://") else { throw HakoError(.invalidArgument("--listen"), "invalid --listen \"\(address)\": expected tcp://HOST:PORT") }
        let hostPort = String(address.dropFirst("tcp://".count))
        guard let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...]) else {
            throw HakoError(.invalidArgument("--listen"), "invalid --listen \"\(address)\": expected tcp://HOST:PORT")
        }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &list)
        guard rc == 0, let ai = list else {
            throw HakoError(.invalidArgument("--listen"), "cannot listen on \(address): " + String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(ai) }
        let s = try sys("socket") { socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let fd = FileDescriptor(s)
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        try sys("bind", address) { bind(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) }
        try sys("listen", address) { listen(s, 128) }
        return fd
    }

    /// Whether a socket is TCP (IPv4 or IPv6), e.g. one systemd passed.
    public static func isTCP(_ socket: FileDescriptor) -> Bool {
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket.rawValue, $0, &len) } } == 0
        return ok && (Int32(addr.ss_family) == AF_INET || Int32(addr.ss_family) == AF_INET6)
    }

    static func isListening(_ path: String) -> Bool {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { return false }
        defer { close(s) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } } == 0
    }
}
