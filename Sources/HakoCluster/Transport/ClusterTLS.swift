/// The cluster speaks HakoTransport's types (`Certificate`, `PrivateKey`,
/// `TLSContext`, `Sockets`) in its own API: whoever imports the cluster sees them.
@_exported import HakoTransport

/// The cluster's mutual TLS in HakoTransport's terms: TLS 1.3 only, the
/// cluster's CA pinned (no system roots, no host names: a peer is who its
/// certificate's role says, checked by the caller), both sides presenting a
/// certificate of it.
extension TLSContext {
    /// The coordinator's side (and Raft's accepting one): presents its
    /// certificate with `chain`, the root that signed it; accepts clients of
    /// every root of `trust` (both while the CA rotates). A client without a
    /// certificate gets through the handshake; it may only send `join`.
    public static func server(certificate: Certificate, key: PrivateKey, chain: Certificate, trust: TrustBundle) throws(ClusterError) -> TLSContext {
        try make(.init(side: .server, identity: .certificate(certificate, key: key, chain: [chain]), trust: .roots(trust.roots),
                       clientCertificate: .optional, versions: .tls13Only))
    }

    /// A client: its own certificate if it has one; the server verified
    /// against `trust` (nil only for joining, which pins the CA itself).
    public static func client(certificate: Certificate?, key: PrivateKey?, trust: Certificate?) throws(ClusterError) -> TLSContext {
        try client(certificate: certificate, key: key, trusting: trust.map { [$0] } ?? [])
    }

    /// The same trusting every root of a bundle (none: joining).
    public static func client(certificate: Certificate?, key: PrivateKey?, trusting roots: [Certificate]) throws(ClusterError) -> TLSContext {
        var identity: Identity?
        if let certificate, let key { identity = .certificate(certificate, key: key, chain: []) }
        return try make(.init(side: .client, identity: identity, trust: roots.isEmpty ? .none : .roots(roots), versions: .tls13Only))
    }

    private static func make(_ c: Configuration) throws(ClusterError) -> TLSContext {
        do { return try TLSContext(c) } catch { throw .security(error.reason) }
    }
}

extension TransportError {
    /// The words without the peer (the cluster's messages name it themselves).
    var reason: String {
        switch self {
        case .resolve(_, let r), .connect(_, let r), .listen(_, let r), .tls(_, let r), .protocolError(_, let r): return r
        case .timeout(_, let what): return "timed out \(what)"
        case .closed: return "closed the connection"
        case .invalidURL: return description
        }
    }
}
