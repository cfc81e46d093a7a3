#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoSystem

/// How a registry client checks its peer (HTTPClient's per-host settings).
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

/// An SSL_CTX: one side's certificate, whom it trusts and how, shared by its
/// connections. A context does not change once made (OpenSSL contexts are
/// safe to use from many threads once configured): new trust, as when a
/// cluster's CA rotates, is a new context (`replacingTrust`) that new
/// connections use while open ones keep theirs.
///
/// Every context: no session cache and no session tickets (nothing here
/// resumes a session), partial writes from a buffer that may move between
/// retries (non-blocking use), and a peer that closes without close_notify
/// ends the stream (lengths, digests and framing catch truncation).
public final class TLSContext: @unchecked Sendable {
    public enum Side: Sendable { case client, server }

    /// This side's certificate (with the chain sent after it) and key.
    public enum Identity: Sendable {
        /// PEM files: the certificate file may hold the chain after the leaf.
        case files(certificate: String, key: String)
        case certificate(Certificate, key: PrivateKey, chain: [Certificate])
    }

    /// Whom this side trusts.
    public enum Trust: Sendable {
        /// The system's roots, and a PEM file's too (a registry's CA).
        case system(addingFile: String?)
        /// The roots of a PEM file only (docker's `--tlscacert`).
        case file(String)
        /// These roots only: a pinned CA (a cluster's; two while it rotates).
        case roots([Certificate])
        /// The peer's certificate is not checked: `--tls-verify=false`, or a
        /// caller that pins it itself (a join token's fingerprint).
        case none
    }

    /// A server's demand on clients (with any trust but `.none`).
    public enum ClientCertificate: Sendable {
        /// A client without a certificate of a trusted root fails the handshake.
        case required
        /// A client without one gets through the handshake (one with a bad
        /// one does not): the caller decides what it may do.
        case optional
    }

    public enum Versions: Sendable { case tls12OrLater, tls13Only }

    public struct Configuration: Sendable {
        public var side: Side
        public var identity: Identity?
        public var trust: Trust
        public var clientCertificate: ClientCertificate
        public var versions: Versions

        public init(side: Side, identity: Identity? = nil, trust: Trust, clientCertificate: ClientCertificate = .required,
                    versions: Versions = .tls12OrLater) {
            self.side = side
            self.identity = identity
            self.trust = trust
            self.clientCertificate = clientCertificate
            self.versions = versions
        }
    }

    package let ctx: OpaquePointer
    public let configuration: Configuration

    public init(_ configuration: Configuration) throws(TransportError) {
        _ = sslInitialised
        let method = configuration.side == .client ? TLS_client_method() : TLS_server_method()
        guard let method, let ctx = SSL_CTX_new(method) else {
            throw .tls(peer: "-", reason: openSSLErrorText("cannot create a TLS context"))
        }
        // From here on deinit frees the context, whatever is thrown.
        self.ctx = ctx
        self.configuration = configuration
        let versions = configuration.versions == .tls13Only ? hako_ssl_ctx_tls13_only(ctx) : hako_ssl_ctx_min_tls12(ctx)
        guard versions == 1 else { throw .tls(peer: "-", reason: openSSLErrorText("cannot choose the TLS versions")) }
        hako_ssl_ctx_nonblocking_writes(ctx)
        hako_ssl_ctx_ignore_unexpected_eof(ctx)
        SSL_CTX_set_num_tickets(ctx, 0)
        if let identity = configuration.identity { try use(identity) }
        try trust(configuration.trust)
    }

    deinit { SSL_CTX_free(ctx) }

    /// The same side, certificate and settings, trusting `trust` instead:
    /// for the connections made from now on.
    public func replacingTrust(_ trust: Trust) throws(TransportError) -> TLSContext {
        var c = configuration
        c.trust = trust
        return try TLSContext(c)
    }

    private func use(_ identity: Identity) throws(TransportError) {
        switch identity {
        case .files(let certificate, let key):
            for (what, path) in [("certificate", certificate), ("key", key)] where !FS.exists(path) {
                throw .tls(peer: "-", reason: "\(what) file \(path) does not exist")
            }
            guard SSL_CTX_use_certificate_chain_file(ctx, certificate) == 1 else {
                throw .tls(peer: "-", reason: "cannot load certificate \(certificate): " + openSSLErrorText("invalid PEM"))
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
                throw .tls(peer: "-", reason: "cannot load key \(key): " + openSSLErrorText("invalid key or not the certificate's"))
            }
        case .certificate(let certificate, let key, let chain):
            guard SSL_CTX_use_certificate(ctx, certificate.x509) == 1, SSL_CTX_use_PrivateKey(ctx, key.pkey) == 1,
                  SSL_CTX_check_private_key(ctx) == 1 else {
                throw .tls(peer: "-", reason: "cannot use the certificate and key: " + openSSLErrorText("not the certificate's key"))
            }
            for c in chain where hako_ssl_ctx_add_chain_cert(ctx, c.x509) != 1 {
                throw .tls(peer: "-", reason: "cannot add \(c.commonName) to the chain: " + openSSLErrorText("invalid certificate"))
            }
        }
    }

    private func trust(_ trust: Trust) throws(TransportError) {
        let store = SSL_CTX_get_cert_store(ctx)
        switch trust {
        case .none:
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            return
        case .system(let extra):
            SSL_CTX_set_default_verify_paths(ctx)
            if let extra { try load(caFile: extra) }
        case .file(let path):
            try load(caFile: path)
            // The CA's names are offered to clients choosing a certificate.
            if configuration.side == .server, let names = SSL_load_client_CA_file(path) { SSL_CTX_set_client_CA_list(ctx, names) }
        case .roots(let roots):
            for root in roots {
                guard X509_STORE_add_cert(store, root.x509) == 1 else {
                    throw .tls(peer: "-", reason: "cannot trust \(root.commonName): " + openSSLErrorText("invalid certificate"))
                }
                if configuration.side == .server { SSL_CTX_add_client_CA(ctx, root.x509) }
            }
        }
        let demand = configuration.side == .server && configuration.clientCertificate == .required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | demand, nil)
    }

    private func load(caFile path: String) throws(TransportError) {
        guard FS.exists(path) else { throw .tls(peer: "-", reason: "CA file \(path) does not exist") }
        guard SSL_CTX_load_verify_locations(ctx, path, nil) == 1 else {
            throw .tls(peer: "-", reason: "cannot load CA file \(path): " + openSSLErrorText("invalid PEM"))
        }
    }
}

extension TLSContext {
    /// A registry client's context: the system's roots (and `caFile`'s) unless
    /// `verify` is off, a client certificate when given.
    public convenience init(_ options: TLSOptions) throws(TransportError) {
        let identity = options.certificateFile.map { Identity.files(certificate: $0, key: options.keyFile ?? $0) }
        try self.init(Configuration(side: .client, identity: identity,
                                    trust: options.verify ? .system(addingFile: options.caFile) : .none))
    }

    /// A server's context for mutual TLS (docker's `--tlsverify` contract):
    /// presents `certificateFile` (with its chain) and `keyFile`, and requires
    /// every client to present a certificate that verifies against `clientCAFile`.
    public convenience init(serverCertificateFile certificate: String, keyFile key: String, clientCAFile ca: String) throws(TransportError) {
        if !FS.exists(ca) { throw .tls(peer: "-", reason: "CA file \(ca) does not exist") }
        try self.init(Configuration(side: .server, identity: .files(certificate: certificate, key: key), trust: .file(ca),
                                    clientCertificate: .required))
    }

    /// Whether connections check the peer's certificate.
    public var verifiesPeer: Bool {
        if case .none = configuration.trust { return false }
        return true
    }
}
