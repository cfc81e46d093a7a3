#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoSystem

/// One TLS session over a connected socket, client or server as its context
/// says. Used two ways over the same steps:
/// - non-blocking, from a poll loop: `handshakeStep`, `readStep`, `drain`,
///   `writeStep` each make one move and say what they wait for;
/// - blocking, as a `Connection` (registries, the Docker API's relay): the
///   socket's own timeouts bound every wait, and a step that would wait
///   longer is a timeout.
public final class TLSConnection: Connection, @unchecked Sendable {
    /// What one step came to.
    public enum Status: Equatable, Sendable {
        /// Done: the handshake completed, or bytes moved.
        case done
        /// Nothing more until the socket is readable (or, `wantWrite`, writable).
        case wantRead
        case wantWrite
        /// The peer ended the stream (close_notify, end of file or a reset).
        case closed
        /// The session failed; why, in words (a certificate the clock
        /// refused says which clock to look at).
        case failed(String)
    }

    /// The socket under the session, for polling.
    public let fd: FileDescriptor
    /// "host:port", for messages.
    public let peer: String
    private var ssl: OpaquePointer?
    private let side: TLSContext.Side

    /// A session not yet shaken hands. A client names `serverName` (SNI) and,
    /// when its context verifies, requires the server's certificate to be
    /// for it (a DNS name or an IP address); nil checks no name (the caller
    /// judges the peer's certificate itself, as the cluster does by its role).
    public init(fd: FileDescriptor, peer: String, context: TLSContext, serverName: String? = nil) throws(TransportError) {
        TLSConnection.ignoreSIGPIPE
        self.fd = fd
        self.peer = peer
        side = context.configuration.side
        guard let s = SSL_new(context.ctx) else {
            throw .tls(peer: peer, reason: openSSLErrorText("cannot create a TLS session"))
        }
        ssl = s
        guard SSL_set_fd(s, fd.rawValue) == 1 else { throw .tls(peer: peer, reason: openSSLErrorText("cannot attach the socket")) }
        if side == .server {
            SSL_set_accept_state(s)
            // A record without application data (a key update) makes SSL_read
            // say "want read" instead of waiting for the next one: a poll
            // loop relaying both ways never stalls in it.
            hako_ssl_clear_auto_retry(s)
            return
        }
        SSL_set_connect_state(s)
        guard let name = serverName.map({ $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 }) else { return }
        let isIP = TLSConnection.isIPAddress(name)
        if !isIP { _ = hako_ssl_set_sni(s, name) }
        if context.verifiesPeer {
            if isIP { X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name) } else { SSL_set1_host(s, name) }
        }
    }

    deinit { if let ssl { SSL_free(ssl) } }

    /// OpenSSL writes to its socket with write(2): a peer that went away
    /// would kill the process with SIGPIPE instead of failing the write.
    /// Every process that speaks TLS ignores it (spawned programs reset it).
    static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    // MARK: steps

    /// One move of the handshake.
    public func handshakeStep() -> Status {
        guard let ssl else { return .closed }
        while true {
            ERR_clear_error()
            errno = 0
            let rc = SSL_do_handshake(ssl)
            if rc == 1 { return .done }
            if let st = status(rc, "handshake") { return st }
        }
    }

    /// One SSL_read: the bytes it gave (`.done`), or why none.
    public func readStep(into buffer: UnsafeMutableRawBufferPointer) -> (Int, Status) {
        guard let ssl else { return (0, .closed) }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return (0, .done) }
        while true {
            ERR_clear_error()
            errno = 0
            var n = 0
            let rc = SSL_read_ex(ssl, base, buffer.count, &n)
            if rc == 1 { return (n, .done) }
            if let st = status(rc, "read") { return (0, st) }
        }
    }

    /// One SSL_write of as much of `bytes` as the socket takes.
    public func writeStep(_ bytes: UnsafeRawBufferPointer) -> (Int, Status) {
        guard let ssl else { return (0, .closed) }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return (0, .done) }
        while true {
            ERR_clear_error()
            errno = 0
            var n = 0
            let rc = SSL_write_ex(ssl, base, bytes.count, &n)
            if rc == 1 { return (n, .done) }
            if let st = status(rc, "write") { return (0, st) }
        }
    }

    public func writeStep(_ bytes: ArraySlice<UInt8>) -> (Int, Status) {
        bytes.withUnsafeBytes { writeStep($0) }
    }

    /// Reads what is available now, up to about `max` bytes: `.done` when
    /// the budget ran out with more perhaps waiting, else what stopped it.
    public func drain(max: Int) -> ([UInt8], Status) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < max {
            let (n, st) = buf.withUnsafeMutableBytes { readStep(into: $0) }
            out.append(contentsOf: buf[0..<n])
            guard st == .done else { return (out, st) }
        }
        return (out, .done)
    }

    /// The status after a failed call; nil: interrupted by a signal, try again.
    private func status(_ rc: Int32, _ what: String) -> Status? {
        guard let ssl else { return .closed }
        let err = errno
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ:
            // A blocking socket's read timing out reads as "want read" too; a
            // signal (EINTR: SO_RCVTIMEO sockets are not restarted) does not count.
            return err == EINTR ? nil : .wantRead
        case SSL_ERROR_WANT_WRITE:
            return err == EINTR ? nil : .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            return .closed
        case SSL_ERROR_SYSCALL:
            if err == EINTR { return nil }
            let queued = openSSLErrorText("")
            if err == 0 || err == ECONNRESET || err == EPIPE { return queued.isEmpty ? .closed : .failed("\(what) failed: \(queued)") }
            return .failed("\(what) failed: " + (queued.isEmpty ? String(cString: strerror(err)) : queued))
        default:
            let v = SSL_get_verify_result(ssl)
            if v != Int(X509_V_OK) {
                _ = openSSLErrorText("")
                var reason = "certificate verification failed: " + String(cString: X509_verify_cert_error_string(v))
                let validity = TLSClock.peerValidity(ssl)
                if let words = TLSClock.explain(verifyResult: v, notBefore: validity.notBefore, notAfter: validity.notAfter) {
                    reason += " (\(words))"
                }
                return .failed(reason)
            }
            return .failed("\(what) failed: " + openSSLErrorText(side == .client ? "the peer does not speak TLS" : "the client does not speak TLS"))
        }
    }

    /// Decrypted bytes OpenSSL holds that a poll of the socket would not show.
    public var hasPendingBytes: Bool { ssl.map { SSL_pending($0) > 0 } ?? false }

    /// The peer's certificate, once the handshake is done (a client without
    /// one, on a server that lets it through: nil).
    public var peerCertificate: Certificate? {
        guard let ssl, let x = SSL_get1_peer_certificate(ssl) else { return nil }
        return Certificate(owning: x)
    }

    /// The certificates the peer sent (a client sees the server's leaf first),
    /// verified or not: what a caller that pins a fingerprint looks at.
    public var peerChain: [Certificate] {
        guard let ssl, let sk = SSL_get_peer_cert_chain(ssl) else { return [] }
        var out: [Certificate] = []
        for i in 0..<hako_x509_stack_count(sk) {
            if let x = hako_x509_stack_at(sk, i) { out.append(Certificate(retaining: x)) }
        }
        return out
    }

    // MARK: blocking

    /// Handshakes with `host` over `tcp` (a blocking socket whose timeouts
    /// bound the handshake): SNI and the host-name check use `host`.
    public convenience init(tcp: TCPConnection, host: String, context: TLSContext) throws(TransportError) {
        try self.init(fd: tcp.fd, peer: tcp.peer, context: context, serverName: host)
        try handshake(what: "in the TLS handshake")
    }

    /// The server's side of an accepted TCP connection: the handshake, with
    /// the client's certificate verified as `context` requires. Reads and
    /// writes of the handshake time out after `timeout` seconds; afterwards a
    /// relay polls the socket and waits on nothing.
    public convenience init(accepting fd: FileDescriptor, peer: String, context: TLSContext, timeout: Double = 10) throws(TransportError) {
        Sockets.setTimeouts(fd.rawValue, timeout)
        var one: Int32 = 1
        setsockopt(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        try self.init(fd: fd, peer: peer, context: context)
        try handshake(what: "in the TLS handshake")
        Sockets.setTimeouts(fd.rawValue, 0)
    }

    /// The whole handshake on a blocking socket.
    private func handshake(what: String) throws(TransportError) {
        switch handshakeStep() {
        case .done: return
        case .wantRead, .wantWrite: throw .timeout(peer: peer, what: what)
        case .closed: throw .tls(peer: peer, reason: "handshake failed: the peer closed the connection")
        case .failed(let why): throw .tls(peer: peer, reason: why)
        }
    }

    /// Reads at most `buffer.count` bytes, waiting as the socket's timeout
    /// allows; 0 at the end of the stream.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let (n, st) = readStep(into: buffer)
        switch st {
        case .done: return n
        case .closed: return 0
        case .wantRead, .wantWrite: throw TransportError.timeout(peer: peer, what: "waiting for data")
        case .failed(let why): throw TransportError.tls(peer: peer, reason: why)
        }
    }

    /// Reads what one record brings: 0 at the end of the stream, nil when the
    /// record held no application data (a key update) or nothing is there.
    /// Call it when the socket is readable or `hasPendingBytes`.
    public func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        let (n, st) = readStep(into: buffer)
        switch st {
        case .done: return n
        case .closed: return 0
        case .wantRead, .wantWrite: return nil
        case .failed(let why): throw TransportError.tls(peer: peer, reason: why)
        }
    }

    /// Writes every byte, waiting as the socket's timeout allows.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            let (n, st) = writeStep(UnsafeRawBufferPointer(rebasing: bytes[off...]))
            off += n
            switch st {
            case .done: continue
            case .wantRead, .wantWrite: throw TransportError.timeout(peer: peer, what: "sending")
            case .closed: throw TransportError.closed(peer: peer)
            case .failed(let why): throw TransportError.tls(peer: peer, reason: why)
            }
        }
    }

    /// Sends close_notify if it can without waiting; frees the session and closes the socket.
    public func close() {
        if let s = ssl {
            ERR_clear_error()
            if SSL_is_init_finished(s) == 1 { _ = SSL_shutdown(s) }
            ERR_clear_error()
            SSL_free(s)
            ssl = nil
        }
        fd.close()
    }
}
