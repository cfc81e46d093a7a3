#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The coordinator's key material under `<data_dir>/pki`, and the admin
/// credentials `hako cluster init` writes for the CLI. Keys are 0600.
public struct CoordinatorPKI: Sendable {
    public let dir: String
    public init(dataDir: String) { dir = dataDir + "/pki" }

    public var caCert: String { dir + "/ca.crt" }
    public var caKey: String { dir + "/ca.key" }
    public var serverCert: String { dir + "/coordinator.crt" }
    public var serverKey: String { dir + "/coordinator.key" }

    public var exists: Bool { FS.exists(caCert) && FS.exists(caKey) }

    public func loadCA(clusterID: String) throws(ClusterError) -> CertificateAuthority {
        CertificateAuthority(certificate: try Certificate(pem: try read(caCert)), key: try PrivateKey(pem: try read(caKey)), clusterID: clusterID)
    }

    public func loadServer() throws(ClusterError) -> (Certificate, PrivateKey) {
        (try Certificate(pem: try read(serverCert)), try PrivateKey(pem: try read(serverKey)))
    }

    func read(_ path: String) throws(ClusterError) -> String {
        do { return try FS.readString(path) } catch { throw .security("cannot read \(path): \(error)") }
    }
}

/// What the CLI needs to talk to a coordinator: written by `hako cluster init`.
public struct AdminCredentials: Sendable {
    public let dir: String
    public init(dir: String) { self.dir = dir }

    public var caCert: String { dir + "/ca.crt" }
    public var cert: String { dir + "/admin.crt" }
    public var key: String { dir + "/admin.key" }
    /// The coordinators' addresses as the CLI reaches them (one, or several separated by commas).
    public var coordinatorFile: String { dir + "/coordinator" }

    public func coordinatorAddress() -> String? {
        (try? FS.readString(coordinatorFile))?.trimmed
    }

    /// Saves the coordinators' addresses, leader first, when they differ from
    /// what the file holds. Best effort: read-only credentials keep working
    /// with the list they have.
    public func remember(coordinators: [String]) {
        guard !coordinators.isEmpty else { return }
        let text = coordinators.joined(separator: ",")
        guard text != coordinatorAddress() else { return }
        try? writeSecret(coordinatorFile, text + "\n")
    }

    /// `hako cluster credentials renew`: a new key, a certificate for it from
    /// the coordinator (asked over these credentials, checked against the
    /// cluster CA), both written in place of the old ones; the new certificate.
    public func renew(with client: ClusterClient) throws -> Certificate {
        let newKey = try PrivateKey.generate()
        let csr = try CertificateRequest(key: newKey)
        let reply = try client.request(MessageType.credentialsRenew, RenewRequest(csr: try csr.pem()), as: RenewReply.self)
        let issued = try Certificate(pem: reply.certificate)
        try issued.verify(against: try Certificate(pem: try FS.readString(caCert)))
        guard issued.publicKeyMatches(newKey), issued.role == PKIRole.admin.rawValue else {
            throw ClusterError.security("the coordinator's answer is not an admin certificate for the new key")
        }
        // The key first: until the certificate follows, a crash leaves a pair
        // that does not match, which the next command reports.
        try writeSecret(key, try newKey.pem())
        try writeSecret(cert, try issued.pem())
        return issued
    }
}

/// A node's identity under the agent's state dir: the pinned CA, its key and certificate.
public struct NodeCredentials: Sendable {
    public let dir: String
    public init(stateDir: String) { dir = stateDir }

    public var caCert: String { dir + "/ca.crt" }
    /// The key and the certificate in one file, so renewal swaps both in one rename.
    public var identity: String { dir + "/node.pem" }
    public var nodeFile: String { dir + "/node.json" }

    public var exists: Bool { FS.exists(caCert) && FS.exists(identity) }

    /// The trusted roots (two while the CA rotates), the certificate and its key.
    public func load() throws(ClusterError) -> (trust: TrustBundle, cert: Certificate, key: PrivateKey) {
        let ca: String, ident: String
        do {
            ca = try FS.readString(caCert)
            ident = try FS.readString(identity)
        } catch { throw .security("cannot read the node's credentials in \(dir): \(error)") }
        let cert = try Certificate(pem: ident)
        let key = try PrivateKey(pem: ident)
        guard cert.publicKeyMatches(key) else { throw .security("\(identity): the certificate does not match the key") }
        return (try TrustBundle(pem: ca), cert, key)
    }

    /// The trust bundle first, then key and certificate in one rename: a
    /// node killed in between trusts both roots and holds its old pair, which
    /// the coordinator still accepts while the rotation runs.
    public func save(trust: TrustBundle?, cert: Certificate?, key: PrivateKey?) throws(ClusterError) {
        do {
            try FS.makeDirectories(dir, mode: 0o700)
            FS.removeOrphanedTemporaries(in: dir)
            if let trust { try FS.writeAtomic(caCert, try trust.pem(), mode: 0o644) }
            if let cert, let key { try FS.writeAtomic(identity, try key.pem() + (try cert.pem()), mode: 0o600) }
        } catch let e as ClusterError { throw e } catch {
            throw .security("cannot write the node's credentials in \(dir): \(error)")
        }
    }
}

/// Writes a PEM file readable by root only.
func writeSecret(_ path: String, _ text: String) throws(ClusterError) {
    FS.removeOrphanedTemporaries(in: FS.parentDirectory(path))
    do { try FS.writeAtomic(path, text, mode: 0o600) } catch { throw .security("cannot write \(path): \(error)") }
}

func writePublic(_ path: String, _ text: String) throws(ClusterError) {
    FS.removeOrphanedTemporaries(in: FS.parentDirectory(path))
    do { try FS.writeAtomic(path, text, mode: 0o644) } catch { throw .security("cannot write \(path): \(error)") }
}
