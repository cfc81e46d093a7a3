#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoSystem

/// How a TLS client checks its peer.
public struct TLSOptions: Sendable, Equatable, Hashable {
    /// Check the certificate chain and the host name (off: `--tls-verify=false`).
    public var verify: Bool
    /// PEM bundle of extra trusted CAs (added to the system's).
    public var caFile: String?
    /// PEM certificate and key presented to the server (mutual TLS).
    public var certificateFile: String?
    public var keyFile: String?

    public init(verify: Bool = true, caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.verify = verify
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// OpenSSL set up once, without reading openssl.cnf.
private let sslInitialised: Bool = OPENSSL_init_ssl(UInt64(OPENSSL_INIT_NO_LOAD_CONFIG), nil) == 1

/// The text of OpenSSL's most recent error (and clears the queue).
func openSSLErrorText(_ fallback: String) -> String {
    var last: UInt = 0
    while true {
        let e = ERR_get_error()
        if e == 0 { break }
        last = e
    }
    guard last != 0 else { return fallback }
    var buf = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(last, &buf, buf.count)
    return cString(buf)
}

/// An SSL_CTX: trust store and client certificate, shared by connections
/// (OpenSSL contexts are safe to use from many threads once configured).
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let options: TLSOptions

    public init(_ options: TLSOptions) throws {
        _ = sslInitialised
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TransportError.tls(peer: "-", reason: openSSLErrorText("cannot create a TLS context"))
        }
        self.ctx = ctx
        self.options = options
        _ = hako_ssl_ctx_min_tls12(ctx)
        // A peer that closes without close_notify ends the stream; lengths and digests catch truncation.
        hako_ssl_ctx_ignore_unexpected_eof(ctx)
        if options.verify {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            SSL_CTX_set_default_verify_paths(ctx)
            if let ca = options.caFile {
                guard FS.exists(ca) else { throw TransportError.tls(peer: "-", reason: "CA file \(ca) does not exist") }
                guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else {
                    throw TransportError.tls(peer: "-", reason: "cannot load CA file \(ca): " + openSSLErrorText("invalid PEM"))
                }
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        if let cert = options.certificateFile {
            guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 else {
                throw TransportError.tls(peer: "-", reason: "cannot load certificate \(cert): " + openSSLErrorText("invalid PEM"))
            }
            let key = options.keyFile ?? cert
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
                throw TransportError.tls(peer: "-", reason: "cannot load key \(key): " + openSSLErrorText("invalid key"))
            }
        }
    }

    /// A server's context for mutual TLS (docker's `--tlsverify` contract):
    /// presents `certificateFile` (with its chain) and `keyFile`, and requires
    /// every client to present a certificate that verifies against `clientCAFile`.
    public init(serverCertificateFile certificate: String, keyFile key: String, clientCAFile ca: String) throws {
        _ = sslInitialised
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TransportError.tls(peer: "-", reason: openSSLErrorText("cannot create a TLS context"))
        }
        self.ctx = ctx
        self.options = TLSOptions(verify: true, caFile: ca, certificateFile: certificate, keyFile: key)
        _ = hako_ssl_ctx_min_tls12(ctx)
        for (what, path) in [("CA", ca), ("certificate", certificate), ("key", key)] where !FS.exists(path) {
            throw TransportError.tls(peer: "-", reason: "\(what) file \(path) does not exist")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, certificate) == 1 else {
            throw TransportError.tls(peer: "-", reason: "cannot load certificate \(certificate): " + openSSLErrorText("invalid PEM"))
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            throw TransportError.tls(peer: "-", reason: "cannot load key \(key): " + openSSLErrorText("invalid key or not the certificate's"))
        }
        guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else {
            throw TransportError.tls(peer: "-", reason: "cannot load CA file \(ca): " + openSSLErrorText("invalid PEM"))
        }
        // The CA's names are offered to clients choosing a certificate.
        if let names = SSL_load_client_CA_file(ca) { SSL_CTX_set_client_CA_list(ctx, names) }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        // OpenSSL writes to sockets with write(2): a client gone mid-write must fail the write, not kill the server.
        signal(SIGPIPE, SIG_IGN)
    }

    deinit { SSL_CTX_free(ctx) }
}

/// TLS over a TCP connection (client side).
public final class TLSConnection: Connection, @unchecked Sendable {
    private let tcp: TCPConnection
    private let ssl: OpaquePointer
    private var closed = false
    public var peer: String { tcp.peer }

    /// Handshakes with `host` over `tcp`: SNI and host-name checks use `host`
    /// (a DNS name or an IP address).
    public init(tcp: TCPConnection, host: String, context: TLSContext) throws {
        self.tcp = tcp
        guard let ssl = SSL_new(context.ctx) else {
            throw TransportError.tls(peer: tcp.peer, reason: openSSLErrorText("cannot create a TLS session"))
        }
        self.ssl = ssl
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let isIP = TLSConnection.isIPAddress(bare)
        if !isIP { _ = hako_ssl_set_sni(ssl, bare) }
        if context.options.verify {
            if isIP {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), bare)
            } else {
                SSL_set1_host(ssl, bare)
            }
        }
        SSL_set_fd(ssl, tcp.fd.rawValue)
        let r = SSL_connect(ssl)
        if r != 1 {
            let err = SSL_get_error(ssl, r)
            let verify = SSL_get_verify_result(ssl)
            var reason: String
            if verify != Int(X509_V_OK) {
                reason = "certificate verification failed: " + String(cString: X509_verify_cert_error_string(verify))
                let validity = TLSClock.peerValidity(ssl)
                if let words = TLSClock.explain(verifyResult: verify, notBefore: validity.notBefore, notAfter: validity.notAfter) {
                    reason += " (\(words))"
                }
            } else if err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK) {
                // (deinit frees the session: every stored property is set by now)
                throw TransportError.timeout(peer: tcp.peer, what: "in the TLS handshake")
            } else {
                reason = "handshake failed: " + openSSLErrorText("the peer does not speak TLS")
            }
            throw TransportError.tls(peer: tcp.peer, reason: reason)
        }
    }

    /// The server's side of an accepted TCP connection: the handshake, with
    /// the client's certificate verified as `context` requires. Reads and
    /// writes of the handshake time out after `timeout` seconds.
    public init(accepting fd: FileDescriptor, peer: String, context: TLSContext, timeout: Double = 10) throws {
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd.rawValue, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd.rawValue, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        tcp = TCPConnection(fd: fd, peer: peer)
        guard let ssl = SSL_new(context.ctx) else {
            throw TransportError.tls(peer: peer, reason: openSSLErrorText("cannot create a TLS session"))
        }
        self.ssl = ssl
        SSL_set_fd(ssl, fd.rawValue)
        let r = SSL_accept(ssl)
        if r != 1 {
            let verify = SSL_get_verify_result(ssl)
            if verify != Int(X509_V_OK) {
                _ = openSSLErrorText("")
                throw TransportError.tls(peer: peer, reason: "client certificate verification failed: " + String(cString: X509_verify_cert_error_string(verify)))
            }
            throw TransportError.tls(peer: peer, reason: "handshake failed: " + openSSLErrorText("the client does not speak TLS"))
        }
        // Once the handshake is done, a relay polls the socket: no timeouts, and
        // a record without application data makes `readAvailable` return nil.
        var none = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(fd.rawValue, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd.rawValue, SOL_SOCKET, SO_SNDTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        hako_ssl_clear_auto_retry(ssl)
    }

    deinit {
        SSL_free(ssl)
    }

    /// The socket under the session, for polling.
    public var socket: FileDescriptor { tcp.fd }

    /// Decrypted bytes OpenSSL holds that a poll of the socket would not show.
    public var hasPendingBytes: Bool { SSL_pending(ssl) > 0 }

    /// Reads what one record brings: 0 at the end of the stream, nil when the
    /// record held no application data (a session ticket, a key update).
    /// Call it when the socket is readable or `hasPendingBytes`.
    public func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = SSL_read(ssl, base, Int32(clamping: buffer.count))
            if n > 0 { return Int(n) }
            let e = errno
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_ZERO_RETURN: return 0
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return nil
            case SSL_ERROR_SYSCALL:
                if e == EINTR { continue }
                if n == 0 || e == ECONNRESET || e == 0 { _ = openSSLErrorText(""); return 0 }
                throw TransportError.closed(peer: peer)
            default:
                throw TransportError.tls(peer: peer, reason: openSSLErrorText("read failed"))
            }
        }
    }


    static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = SSL_read(ssl, base, Int32(clamping: buffer.count))
            if n > 0 { return Int(n) }
            let e = errno
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_ZERO_RETURN: return 0
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: continue
            case SSL_ERROR_SYSCALL:
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { throw TransportError.timeout(peer: peer, what: "waiting for data") }
                if n == 0 { return 0 }
                throw TransportError.closed(peer: peer)
            default:
                throw TransportError.tls(peer: peer, reason: openSSLErrorText("read failed"))
            }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count {
            let n = SSL_write(ssl, base + off, Int32(clamping: bytes.count - off))
            if n > 0 { off += Int(n); continue }
            let e = errno
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: continue
            case SSL_ERROR_SYSCALL:
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { throw TransportError.timeout(peer: peer, what: "sending") }
                throw TransportError.closed(peer: peer)
            default:
                throw TransportError.tls(peer: peer, reason: openSSLErrorText("write failed"))
            }
        }
    }

    public func close() {
        guard !closed else { return }
        closed = true
        SSL_shutdown(ssl)
        tcp.close()
    }
}
