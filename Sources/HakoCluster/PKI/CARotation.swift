#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// A CA rotation in progress (`hako cluster ca rotate`), as the coordinator
/// stores it (meta key `ca_rotation`). The new root signs from the start; the
/// previous one stays trusted until every node holds a certificate of the new
/// one and, with several coordinators, every coordinator presents one; then
/// it is dropped.
///
/// With several coordinators the new root travels through the Raft log
/// (`CARoot`, meta `ca_root`, its key sealed) and each coordinator moves in two
/// steps, as `coordinators` and `presenting` record: it installs the new root
/// (trusting both) and makes itself a certificate of it, which it keeps aside;
/// once every node and coordinator trusts the new root, it presents that
/// certificate. The old root is dropped only after every coordinator presents
/// one of the new root: a coordinator that lags behind the entry that drops it
/// is still reached by the others, which then trust only the new root.
public struct CARotation: Codable, Sendable, Equatable {
    public static let metaKey = "ca_rotation"
    /// Wall time the rotation began.
    public var started: Double
    /// Fingerprints of the root being retired and of the new one.
    public var previous: String
    public var next: String
    /// Nodes that still hold a certificate of the previous root.
    public var pending: Set<String>
    /// Coordinators (Raft ids) that have not yet said they trust the new root
    /// and hold a certificate of it.
    public var coordinators: Set<UInt64> = []
    /// Coordinators that do not present their certificate of the new root yet.
    public var presenting: Set<UInt64> = []

    public init(started: Double, previous: String, next: String, nodes: some Sequence<String>,
                coordinators: Set<UInt64> = [], presenting: Set<UInt64> = []) {
        self.started = started
        self.previous = previous
        self.next = next
        pending = Set(nodes)
        self.coordinators = coordinators
        self.presenting = presenting
    }

    enum CodingKeys: String, CodingKey { case started, previous, next, pending, coordinators, presenting }

    /// A rotation stored by a single coordinator of an older hako has no coordinators.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        started = try c.decode(Double.self, forKey: .started)
        previous = try c.decode(String.self, forKey: .previous)
        next = try c.decode(String.self, forKey: .next)
        pending = try c.decode(Set<String>.self, forKey: .pending)
        coordinators = try c.decodeIfPresent(Set<UInt64>.self, forKey: .coordinators) ?? []
        presenting = try c.decodeIfPresent(Set<UInt64>.self, forKey: .presenting) ?? []
    }

    /// Every node and coordinator trusts the new root: the coordinators may present certificates of it.
    public var everyoneTrustsTheNewRoot: Bool { pending.isEmpty && coordinators.isEmpty }

    /// Every node holds a certificate of the new root and every coordinator
    /// presents one: the previous root can go.
    public var isComplete: Bool { everyoneTrustsTheNewRoot && presenting.isEmpty }

    /// A node got a certificate of the new root, or left the cluster.
    public mutating func settled(_ node: String) { pending.remove(node) }

    /// A coordinator left the cluster: it holds nothing back.
    public mutating func removed(coordinator id: UInt64) {
        coordinators.remove(id)
        presenting.remove(id)
    }

    /// What the meta table keeps ("" once finished).
    public func encoded() throws -> String { String(decoding: try Wire.encodeJSON(self), as: UTF8.self) }

    public static func decode(_ text: String?) -> CARotation? {
        guard let text, !text.isEmpty else { return nil }
        return try? Wire.decodeJSON(CARotation.self, from: Array(text.utf8))
    }
}

/// The root that signs, as several coordinators replicate it (meta
/// `ca_root`): the certificate, and its key sealed with the secrets key every
/// coordinator holds (`SecretBox`, `<data_dir>/pki/secrets.key`), so that the
/// Raft log, the database and its snapshots never hold the CA key in clear —
/// as with secrets, only the coordinators' `pki/` directories do.
public struct CARoot: Codable, Sendable {
    public static let metaKey = "ca_root"
    public var certificate: String
    /// The key's PEM sealed (hex), bound to the certificate's fingerprint.
    public var sealedKey: String

    static func context(_ fingerprint: String) -> String { "ca_root:" + fingerprint }

    public static func seal(_ ca: CertificateAuthority, with box: SecretBox) throws(ClusterError) -> String {
        let sealed = try box.seal(Array(try ca.key.pem().utf8), context: context(ca.certificate.fingerprint))
        let root = CARoot(certificate: try ca.certificate.pem(), sealedKey: hexString(sealed))
        do { return String(decoding: try Wire.encodeJSON(root), as: UTF8.self) } catch { throw .store("cannot encode the CA root: \(error)") }
    }

    /// The root the meta value holds; an error when its key does not open
    /// with `box` (another secrets key) or is not the certificate's.
    public static func open(_ text: String, with box: SecretBox, clusterID: String) throws(ClusterError) -> CertificateAuthority {
        let root: CARoot
        do { root = try Wire.decodeJSON(CARoot.self, from: Array(text.utf8)) } catch { throw .store("an unreadable CA root in the store: \(error)") }
        let cert = try Certificate(pem: root.certificate)
        guard let sealed = SecretBox.hexBytes(root.sealedKey) else { throw .security("the CA root's key in the store is not hex") }
        let pem = try box.open(sealed, context: context(cert.fingerprint))
        let key = try PrivateKey(pem: String(decoding: pem, as: UTF8.self))
        guard cert.publicKeyMatches(key) else { throw .security("the CA root's key in the store is not its certificate's") }
        return CertificateAuthority(certificate: cert, key: key, clusterID: clusterID)
    }
}

/// The roots a cluster member trusts, the signing (newest) one first; written
/// as one PEM file (`ca.crt` of the agent and of the admin credentials).
public struct TrustBundle: Sendable {
    public let roots: [Certificate]

    public init(_ roots: [Certificate]) { self.roots = roots }

    public init(pem: String) throws(ClusterError) { roots = try Certificate.bundle(pem: pem) }

    /// The root that signs new certificates.
    public var signing: Certificate? { roots.first }

    public func pem() throws(ClusterError) -> String {
        var out = ""
        for r in roots { out += try r.pem() }
        return out
    }

    public var fingerprints: [String] { roots.map(\.fingerprint) }

    /// The root `cert` chains to, if any.
    public func issuer(of cert: Certificate, at time: Double? = nil) -> Certificate? {
        roots.first { (try? cert.verify(against: $0, at: time)) != nil }
    }

    /// Throws unless `cert` chains to one of the roots.
    public func verify(_ cert: Certificate, at time: Double? = nil) throws(ClusterError) {
        if issuer(of: cert, at: time) != nil { return }
        // Refused: the signing root's words for why (expired, another CA…).
        guard let signing else { throw .security("no trusted CA") }
        try cert.verify(against: signing, at: time)
        throw .security("certificate \(cert.commonName) is not signed by a trusted CA")
    }
}

extension CoordinatorPKI {
    /// The root being retired while a rotation runs (trusted, signs nothing).
    public var previousCACert: String { dir + "/ca-previous.crt" }
    var nextCACert: String { dir + "/ca-next.crt" }
    var nextCAKey: String { dir + "/ca-next.key" }
    /// With several coordinators: this coordinator's certificate of the new
    /// root (for its own key), kept aside until it may present it.
    public var nextServerCert: String { dir + "/coordinator-next.crt" }

    /// The trusted roots: `ca.crt` (signing), then `ca-previous.crt` while a rotation runs.
    public func loadTrust() throws(ClusterError) -> TrustBundle {
        var roots = [try Certificate(pem: try read(caCert))]
        if FS.exists(previousCACert) { roots.append(try Certificate(pem: try read(previousCACert))) }
        return TrustBundle(roots)
    }

    /// Starts a rotation on disk: the new pair as `ca-next.*`, the current
    /// root copied to `ca-previous.crt`, then the new pair renamed over
    /// `ca.*`. A coordinator killed in between finishes it at its next start
    /// (`recoverRotation`).
    public func beginRotation(_ new: CertificateAuthority) throws(ClusterError) {
        try writeSecret(nextCAKey, try new.key.pem())
        try writePublic(nextCACert, try new.certificate.pem())
        try promoteNext()
    }

    /// Completes a rotation `beginRotation` left half done; a `ca-next.key`
    /// without its certificate (killed while writing it) is dropped.
    public func recoverRotation() throws(ClusterError) {
        if FS.exists(nextCACert) { try promoteNext() } else { try? FS.unlinkIfPresent(nextCAKey) }
    }

    private func promoteNext() throws(ClusterError) {
        if !FS.exists(previousCACert) { try writePublic(previousCACert, try read(caCert)) }
        for (from, to) in [(nextCAKey, caKey), (nextCACert, caCert)] where FS.exists(from) {
            guard rename(from, to) == 0 else { throw .security("cannot rename \(from) to \(to): \(String(cString: strerror(errno)))") }
        }
    }

    /// A rotation replicated through Raft reaches this coordinator: the new
    /// root installed as `beginRotation` does (the current one kept as
    /// `ca-previous.crt`); nothing when it is the root already. Whether it did.
    public func install(_ root: CertificateAuthority) throws(ClusterError) -> Bool {
        let current = try Certificate(pem: try read(caCert))
        guard current.fingerprint != root.certificate.fingerprint else { return false }
        try writeSecret(nextCAKey, try root.key.pem())
        try writePublic(nextCACert, try root.certificate.pem())
        try writePublic(previousCACert, try current.pem())
        try promoteNext()
        return true
    }

    /// Presents the certificate kept aside (`nextServerCert`) from now on.
    public func presentNext() throws(ClusterError) {
        guard FS.exists(nextServerCert) else { return }
        guard rename(nextServerCert, serverCert) == 0 else {
            throw .security("cannot rename \(nextServerCert) to \(serverCert): \(String(cString: strerror(errno)))")
        }
    }

    /// The previous root no longer trusted (the end of a rotation, on every coordinator).
    public func dropPrevious() throws(ClusterError) {
        do { try FS.unlinkIfPresent(previousCACert) } catch { throw .security("cannot remove \(previousCACert): \(error)") }
    }

    /// Ends a rotation: the coordinator's certificate of the new root in
    /// place, the previous root no longer trusted.
    public func finishRotation(serverCertificate: Certificate) throws(ClusterError) {
        try writePublic(serverCert, try serverCertificate.pem())
        do { try FS.unlinkIfPresent(previousCACert) } catch { throw .security("cannot remove \(previousCACert): \(error)") }
    }
}

extension AdminCredentials {
    /// `hako cluster ca rotate`: starts the rotation (or joins the running
    /// one), writes admin credentials of the new root and the trust bundle,
    /// then asks every second how many nodes are left, for at most `timeout`
    /// seconds. The last status (not rotating: finished); the bundle on disk
    /// follows it.
    public func rotateCA(with client: ClusterClient, timeout: Double, progress: (CAStatus) -> Void) throws -> CAStatus {
        let newKey = try PrivateKey.generate()
        let csr = try CertificateRequest(key: newKey)
        let reply = try client.request(MessageType.caRotate, CARotateRequest(csr: try csr.pem()), as: CARotateReply.self, timeout: 30)
        let bundle = try TrustBundle(pem: reply.status.bundle)
        let issued = try Certificate(pem: reply.certificate)
        guard let signing = bundle.signing, signing.fingerprint == reply.status.fingerprint else {
            throw ClusterError.security("the coordinator's answer names a root its bundle does not start with")
        }
        try issued.verify(against: signing)
        guard issued.publicKeyMatches(newKey), issued.role == PKIRole.admin.rawValue else {
            throw ClusterError.security("the coordinator's answer is not an admin certificate for the new key")
        }
        // The bundle first (it trusts both roots), then key and certificate.
        try writePublic(caCert, try bundle.pem())
        try writeSecret(key, try newKey.pem())
        try writeSecret(cert, try issued.pem())
        var status = reply.status
        let deadline = monotonicSeconds() + max(0, timeout)
        progress(status)
        while status.rotating && monotonicSeconds() < deadline {
            usleep(500_000)
            let next = try client.request(MessageType.caStatus, EmptyBody(), as: CAStatus.self, timeout: 10)
            if next.pending != status.pending || next.rotating != status.rotating { progress(next) }
            status = next
        }
        if !status.rotating { try writePublic(caCert, try TrustBundle(pem: status.bundle).pem()) }
        return status
    }
}
