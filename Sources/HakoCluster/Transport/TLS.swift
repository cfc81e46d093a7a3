#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoSystem
import HakoTransport

/// An OpenSSL context: TLS 1.3 only, no session cache, partial non-blocking writes.
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer

    private init(method: OpaquePointer?) throws(ClusterError) {
        guard let method, let c = SSL_CTX_new(method) else { throw openSSLError("SSL_CTX_new") }
        ctx = c
        guard hako_ssl_ctx_tls13_only(c) == 1 else { throw openSSLError("cannot restrict to TLS 1.3") }
        hako_ssl_ctx_nonblocking_writes(c)
        SSL_CTX_set_num_tickets(c, 0)
    }

    deinit { SSL_CTX_free(ctx) }

    /// The coordinator's side: presents its certificate (with the CA), asks every
    /// client for one and verifies it against the CA. A client without a
    /// certificate gets through the handshake; it may only send `join`.
    public static func server(certificate: Certificate, key: PrivateKey, ca: Certificate) throws(ClusterError) -> TLSContext {
        try server(certificate: certificate, key: key, chain: ca, trust: TrustBundle([ca]))
    }

    /// The same with every root of `trust` accepted for clients (both roots
    /// while the CA rotates); `chain` is the root that signed `certificate`.
    public static func server(certificate: Certificate, key: PrivateKey, chain: Certificate, trust: TrustBundle) throws(ClusterError) -> TLSContext {
        let t = try TLSContext(method: TLS_server_method())
        try t.use(certificate: certificate, key: key)
        guard hako_ssl_ctx_add_chain_cert(t.ctx, chain.x509) == 1 else { throw openSSLError("cannot add the CA to the chain") }
        for ca in trust.roots {
            guard X509_STORE_add_cert(SSL_CTX_get_cert_store(t.ctx), ca.x509) == 1 else { throw openSSLError("cannot trust the CA") }
            SSL_CTX_add_client_CA(t.ctx, ca.x509)
        }
        SSL_CTX_set_verify(t.ctx, SSL_VERIFY_PEER, nil)
        return t
    }

    /// A client: its own certificate if it has one; the server verified
    /// against `trust` (nil only for joining, which pins the CA itself).
    public static func client(certificate: Certificate?, key: PrivateKey?, trust: Certificate?) throws(ClusterError) -> TLSContext {
        try client(certificate: certificate, key: key, trusting: trust.map { [$0] } ?? [])
    }

    /// The same trusting every root of a bundle (none: joining).
    public static func client(certificate: Certificate?, key: PrivateKey?, trusting roots: [Certificate]) throws(ClusterError) -> TLSContext {
        let t = try TLSContext(method: TLS_client_method())
        if let certificate, let key { try t.use(certificate: certificate, key: key) }
        if !roots.isEmpty {
            for root in roots {
                guard X509_STORE_add_cert(SSL_CTX_get_cert_store(t.ctx), root.x509) == 1 else { throw openSSLError("cannot trust the CA") }
            }
            SSL_CTX_set_verify(t.ctx, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(t.ctx, SSL_VERIFY_NONE, nil)
        }
        return t
    }

    func use(certificate: Certificate, key: PrivateKey) throws(ClusterError) {
        guard SSL_CTX_use_certificate(ctx, certificate.x509) == 1, SSL_CTX_use_PrivateKey(ctx, key.pkey) == 1,
              SSL_CTX_check_private_key(ctx) == 1 else { throw openSSLError("cannot use the certificate and key") }
    }
}

/// One TLS connection over a non-blocking socket.
final class TLSStream {
    enum Status: Equatable {
        case done
        case wantRead
        case wantWrite
        case closed
        case failed(String)
    }

    let fd: FileDescriptor
    private var ssl: OpaquePointer?
    let isServer: Bool

    /// OpenSSL writes to its socket with write(2): a peer that went away would
    /// kill the process with SIGPIPE instead of failing the write. Every
    /// process that speaks TLS here ignores it (spawned monitors reset it).
    static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    init(fd: FileDescriptor, context: TLSContext, server: Bool) throws(ClusterError) {
        TLSStream.ignoreSIGPIPE
        self.fd = fd
        isServer = server
        guard let s = SSL_new(context.ctx) else { throw openSSLError("SSL_new") }
        ssl = s
        guard SSL_set_fd(s, fd.rawValue) == 1 else { throw openSSLError("SSL_set_fd") }
        if server { SSL_set_accept_state(s) } else { SSL_set_connect_state(s) }
    }

    deinit { if let ssl { SSL_free(ssl) } }

    private func status(_ rc: Int32, _ what: String) -> Status {
        guard let ssl else { return .closed }
        let e = SSL_get_error(ssl, rc)
        switch e {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL:
            let err = errno
            let q = openSSLError(what).description
            if err == 0 || err == ECONNRESET || err == EPIPE { ERR_clear_error(); return .closed }
            return .failed(q == what ? "\(what): \(String(cString: strerror(err)))" : q)
        default:
            var reason = openSSLError(what).description
            let v = SSL_get_verify_result(ssl)
            if v != Int(X509_V_OK) {
                reason += " (certificate: \(String(cString: X509_verify_cert_error_string(v))))"
                let validity = TLSClock.peerValidity(ssl)
                if let words = TLSClock.explain(verifyResult: v, notBefore: validity.notBefore, notAfter: validity.notAfter) { reason += ": " + words }
            }
            if reason.contains("unexpected eof") { return .closed }
            return .failed(reason)
        }
    }

    func handshake() -> Status {
        guard let ssl else { return .closed }
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        return rc == 1 ? .done : status(rc, "TLS handshake")
    }

    /// Reads what is available, up to `max` bytes.
    func read(max: Int) -> ([UInt8], Status) {
        guard let ssl else { return ([], .closed) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < max {
            ERR_clear_error()
            var n = 0
            let rc = buf.withUnsafeMutableBytes { SSL_read_ex(ssl, $0.baseAddress, $0.count, &n) }
            if rc == 1 {
                out.append(contentsOf: buf[0..<n])
                continue
            }
            return (out, status(rc, "TLS read"))
        }
        return (out, .done)
    }

    /// Writes as much of `bytes` as the socket takes.
    func write(_ bytes: ArraySlice<UInt8>) -> (Int, Status) {
        guard let ssl else { return (0, .closed) }
        guard !bytes.isEmpty else { return (0, .done) }
        ERR_clear_error()
        var n = 0
        let rc = bytes.withUnsafeBytes { SSL_write_ex(ssl, $0.baseAddress, $0.count, &n) }
        return rc == 1 ? (n, .done) : (0, status(rc, "TLS write"))
    }

    /// Bytes OpenSSL has decrypted and not yet handed out.
    var pending: Bool { ssl.map { SSL_pending($0) > 0 } ?? false }

    var peerCertificate: Certificate? {
        guard let ssl, let x = SSL_get1_peer_certificate(ssl) else { return nil }
        return Certificate(owning: x)
    }

    /// The certificates the peer sent (a client sees the server's leaf first).
    var peerChain: [Certificate] {
        guard let ssl, let sk = SSL_get_peer_cert_chain(ssl) else { return [] }
        var out: [Certificate] = []
        for i in 0..<hako_x509_stack_count(sk) {
            if let x = hako_x509_stack_at(sk, i) { out.append(Certificate(retaining: x)) }
        }
        return out
    }

    /// Sends close_notify if it can without waiting; frees the session and closes the socket.
    func close() {
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
