#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// A byte stream to a peer: plain TCP or TLS over TCP. Owned by one thread at
/// a time (a pool hands it over whole), hence `@unchecked Sendable`.
public protocol Connection: AnyObject, Sendable {
    /// Reads at most `buffer.count` bytes; 0 at the end of the stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Writes every byte.
    func write(_ bytes: UnsafeRawBufferPointer) throws
    func close()
}

extension Connection {
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

/// Errors of the transport layer, each naming the peer.
public enum TransportError: Error, CustomStringConvertible, Sendable, Equatable {
    case resolve(host: String, reason: String)
    case connect(peer: String, reason: String)
    case timeout(peer: String, what: String)
    case closed(peer: String)
    case tls(peer: String, reason: String)
    case protocolError(peer: String, reason: String)
    case invalidURL(String)

    public var description: String {
        switch self {
        case .resolve(let host, let reason): return "cannot resolve \(host): \(reason)"
        case .connect(let peer, let reason): return "cannot connect to \(peer): \(reason)"
        case .timeout(let peer, let what): return "\(peer): timed out \(what)"
        case .closed(let peer): return "\(peer) closed the connection"
        case .tls(let peer, let reason): return "TLS with \(peer): \(reason)"
        case .protocolError(let peer, let reason): return "\(peer): \(reason)"
        case .invalidURL(let s): return "invalid URL \"\(s)\""
        }
    }

    /// A connection that never got to talk TLS: the peer may speak plain HTTP.
    public var isHandshakeFailure: Bool {
        if case .tls = self { return true }
        return false
    }
}

/// A connected TCP socket with send and receive timeouts.
public final class TCPConnection: Connection, @unchecked Sendable {
    public let fd: FileDescriptor
    /// "host:port", for messages.
    public let peer: String

    init(fd: FileDescriptor, peer: String) {
        self.fd = fd
        self.peer = peer
    }

    /// Resolves `host` and connects to the first address that answers within
    /// `timeout` seconds; reads and writes then time out after `ioTimeout`.
    public static func connect(host: String, port: UInt16, timeout: Double = 30, ioTimeout: Double = 60) throws -> TCPConnection {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let peer = host + ":" + String(port)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(bare, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw TransportError.resolve(host: bare, reason: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address"
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            cursor = ai.pointee.ai_next
            let s = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), ai.pointee.ai_protocol)
            if s < 0 { lastError = String(cString: strerror(errno)); continue }
            let owned = FileDescriptor(s)
            do {
                try connectNonBlocking(owned.rawValue, ai.pointee.ai_addr, ai.pointee.ai_addrlen, timeout: timeout, peer: peer)
                // Back to blocking, with timeouts on every read and write.
                let flags = fcntl(s, F_GETFL)
                _ = fcntl(s, F_SETFL, flags & ~O_NONBLOCK)
                var tv = timeval(tv_sec: Int(ioTimeout), tv_usec: Int((ioTimeout - Double(Int(ioTimeout))) * 1e6))
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var one: Int32 = 1
                setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return TCPConnection(fd: owned, peer: peer)
            } catch let e as TransportError {
                if case .timeout = e { throw e }
                lastError = e.description
            }
        }
        throw TransportError.connect(peer: peer, reason: lastError)
    }

    private static func connectNonBlocking(_ s: Int32, _ addr: UnsafeMutablePointer<sockaddr>?, _ len: socklen_t,
                                           timeout: Double, peer: String) throws {
        if Glibc.connect(s, addr, len) == 0 { return }
        guard errno == EINPROGRESS else {
            throw TransportError.connect(peer: peer, reason: String(cString: strerror(errno)))
        }
        var pfd = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
        let deadline = monotonicSeconds() + timeout
        while true {
            let left = Int32(max(0, (deadline - monotonicSeconds()) * 1000))
            let r = poll(&pfd, 1, left)
            if r < 0 && errno == EINTR { continue }
            if r < 0 { throw TransportError.connect(peer: peer, reason: String(cString: strerror(errno))) }
            if r == 0 { throw TransportError.timeout(peer: peer, what: "connecting") }
            break
        }
        var err: Int32 = 0
        var errLen = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &errLen)
        if err != 0 { throw TransportError.connect(peer: peer, reason: String(cString: strerror(err))) }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = recv(fd.rawValue, base, buffer.count, 0)
            if n >= 0 { return n }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: throw TransportError.timeout(peer: peer, what: "waiting for data")
            case ECONNRESET: throw TransportError.closed(peer: peer)
            default: throw TransportError.protocolError(peer: peer, reason: "receive: " + String(cString: strerror(errno)))
            }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count {
            let n = send(fd.rawValue, base + off, bytes.count - off, Int32(MSG_NOSIGNAL))
            if n >= 0 { off += n; continue }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: throw TransportError.timeout(peer: peer, what: "sending")
            case EPIPE, ECONNRESET: throw TransportError.closed(peer: peer)
            default: throw TransportError.protocolError(peer: peer, reason: "send: " + String(cString: strerror(errno)))
            }
        }
    }

    public func close() { fd.close() }
}
