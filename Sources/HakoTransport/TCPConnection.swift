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
    case listen(address: String, reason: String)
    case timeout(peer: String, what: String)
    case closed(peer: String)
    case tls(peer: String, reason: String)
    case protocolError(peer: String, reason: String)
    case invalidURL(String)

    public var description: String {
        switch self {
        case .resolve(let host, let reason): return "cannot resolve \(host): \(reason)"
        case .connect(let peer, let reason): return "cannot connect to \(peer): \(reason)"
        case .listen(let address, let reason): return "cannot listen on \(address): \(reason)"
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
    public static func connect(host: String, port: UInt16, timeout: Double = 30, ioTimeout: Double = 60) throws(TransportError) -> TCPConnection {
        let fd = try Sockets.connect(host: host, port: port, timeout: timeout)
        // Blocking from here on, with timeouts on every read and write.
        Sockets.setBlocking(fd.rawValue)
        Sockets.setTimeouts(fd.rawValue, ioTimeout)
        return TCPConnection(fd: fd, peer: host + ":" + String(port))
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
