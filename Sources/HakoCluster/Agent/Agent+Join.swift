import HakoImage
import HakoSystem

/// What a node remembers about its membership (`<state_dir>/node.json`).
public struct NodeIdentity: Codable, Sendable, Equatable {
    public var nodeID: String
    public var clusterID: String
    /// The coordinator's address the node joined through.
    public var coordinator: String
    public var subnet: String

    public static func load(_ creds: NodeCredentials) -> NodeIdentity? {
        guard let bytes = try? FS.readFile(creds.nodeFile) else { return nil }
        return try? Wire.decodeJSON(NodeIdentity.self, from: bytes)
    }

    public func save(_ creds: NodeCredentials) throws {
        FS.removeOrphanedTemporaries(in: FS.parentDirectory(creds.nodeFile))
        try FS.writeAtomic(creds.nodeFile, try Wire.encodeJSON(self), mode: 0o600)
    }
}

extension Agent {
    /// The platform this agent runs on.
    public static var platform: PlatformSpec {
        PlatformSpec(os: Platform.os, architecture: Platform.architecture, variant: Platform.variant)
    }

    /// `hako agent --join TOKEN ADDR`: pins the coordinator by the CA
    /// fingerprint in the token, sends a certificate request for a key made
    /// here, and keeps the signed certificate. The key never leaves the node.
    public static func join(token text: String, coordinator address: String, config: AgentConfig, capacity: Resources,
                            log: ClusterLog) throws -> NodeIdentity {
        let creds = NodeCredentials(stateDir: config.stateDir)
        if let existing = NodeIdentity.load(creds), creds.exists {
            throw ClusterError.conflict("this node already joined cluster \(existing.clusterID.prefix(12)) as \(existing.nodeID.prefix(12)); remove \(config.stateDir) to join again")
        }
        let token = try JoinToken(parsing: text)
        let ep = try Endpoint(parsing: address, defaultPort: CoordinatorConfig.defaultPort)
        let key = try PrivateKey.generate()
        let csr = try CertificateRequest(key: key)
        let client = try ClusterClient.connect(ep, tls: try TLSContext.client(certificate: nil, key: nil, trust: nil), timeout: 15)
        defer { client.close() }
        let ca = try pin(client.peerChain, fingerprint: token.caFingerprint, endpoint: ep)
        let request = JoinRequest(token: token.description, csr: try csr.pem(), name: config.name, hostname: AgentConfig.hostname(),
                                  platform: platform, capacity: capacity, labels: config.labels, agentVersion: Agent.version)
        let reply = try client.request(MessageType.join, request, as: JoinReply.self, timeout: 30)
        let cert = try Certificate(pem: reply.certificate)
        let sentCA = try Certificate(pem: reply.ca)
        guard sentCA.fingerprint == ca.fingerprint else { throw ClusterError.security("the coordinator answered with another CA") }
        try cert.verify(against: ca)
        guard cert.publicKeyMatches(key), cert.commonName == reply.nodeID, cert.role == PKIRole.node.rawValue else {
            throw ClusterError.security("the coordinator issued a certificate that is not this node's")
        }
        try creds.save(trust: TrustBundle([ca]), cert: cert, key: key)
        let identity = NodeIdentity(nodeID: reply.nodeID, clusterID: reply.clusterID, coordinator: ep.description, subnet: reply.subnet)
        do { try identity.save(creds) } catch {
            throw ClusterError.security("cannot write \(creds.nodeFile): \(error)")
        }
        log.info("joined cluster \(reply.clusterID.prefix(12)) as node \(reply.nodeID.prefix(12)) with subnet \(reply.subnet)")
        return identity
    }

    /// A node whose certificate expired while it was off renews it without a
    /// new token: over a connection without a client certificate (the
    /// coordinator pinned by the node's CA), the old certificate and a request
    /// signed with its key. Nothing to do while the certificate is valid by
    /// this clock; the coordinator accepts it within
    /// `CoordinatorCore.expiredRenewalWindow` of the expiry. Returns the new
    /// certificate, or nil when none was needed.
    @discardableResult
    public static func renewExpiredCertificate(config: AgentConfig, log: ClusterLog,
                                               now: Double = Timestamp.now().secondsSince1970) throws -> Certificate? {
        let creds = NodeCredentials(stateDir: config.stateDir)
        guard creds.exists, let identity = NodeIdentity.load(creds) else { return nil }
        let (trust, old, key) = try creds.load()
        guard now > old.notAfter else { return nil }
        let ep = try Endpoint(parsing: config.coordinator ?? identity.coordinator, defaultPort: CoordinatorConfig.defaultPort)
        let client = try ClusterClient.connect(ep, tls: try TLSContext.client(certificate: nil, key: nil, trust: nil), timeout: 15)
        defer { client.close() }
        // Any root the node trusts (two while the CA rotates) pins the coordinator.
        let chain = client.peerChain
        guard let ca = trust.roots.lazy.compactMap({ try? pin(chain, fingerprint: $0.fingerprint, endpoint: ep) }).first else {
            _ = try pin(chain, fingerprint: trust.signing?.fingerprint ?? "", endpoint: ep)
            throw ClusterError.security("\(ep) is not signed by a CA this node trusts")
        }
        let request = RenewExpiredRequest(certificate: try old.pem(), csr: try CertificateRequest(key: key).pem())
        let reply = try client.request(MessageType.renewExpired, request, as: RenewReply.self, timeout: 30)
        let cert = try Certificate(pem: reply.certificate)
        try TrustBundle([ca] + trust.roots).verify(cert, at: now)
        guard cert.publicKeyMatches(key), cert.commonName == identity.nodeID, cert.role == PKIRole.node.rawValue else {
            throw ClusterError.security("the coordinator issued a certificate that is not this node's")
        }
        try creds.save(trust: nil, cert: cert, key: key)
        log.info("the node certificate had expired (\(Timestamp(seconds: Int64(old.notAfter)).rfc3339)): renewed until \(Timestamp(seconds: Int64(cert.notAfter)).rfc3339)")
        return cert
    }

    /// The CA among the certificates the coordinator sent whose fingerprint
    /// the token carries, and a coordinator certificate it signed.
    static func pin(_ chain: [Certificate], fingerprint: String, endpoint: Endpoint) throws(ClusterError) -> Certificate {
        guard let leaf = chain.first else { throw .security("\(endpoint) sent no certificate") }
        guard let ca = chain.first(where: { $0.fingerprint == fingerprint }) else {
            throw .security("\(endpoint) is not the coordinator the token names: no certificate with fingerprint \(fingerprint.prefix(16))… (a different cluster, or someone in between)")
        }
        do { try leaf.verify(against: ca) } catch {
            throw .security("\(endpoint): its certificate is not signed by the pinned CA: \(error)")
        }
        guard leaf.role == PKIRole.coordinator.rawValue else { throw .security("\(endpoint) does not hold the coordinator's certificate") }
        return ca
    }
}
