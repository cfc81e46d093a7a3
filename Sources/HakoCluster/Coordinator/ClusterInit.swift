#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// `hako cluster init`: the cluster CA, the coordinator's certificate, the
/// admin's client certificate for the CLI, and the database. All or nothing:
/// a failure leaves no file behind.
public enum ClusterInit {
    public struct Result: Sendable {
        public var clusterID: String
        public var caFingerprint: String
        public var adminDir: String
        public var coordinatorAddress: String
    }

    /// The address the CLI uses: the listen address, or for a wildcard the
    /// first advertised address, else loopback.
    public static func cliAddress(_ c: CoordinatorConfig) -> String {
        let wildcard = c.listen.host == "0.0.0.0" || c.listen.host == "::"
        let host = wildcard ? (c.advertise.first ?? "127.0.0.1") : c.listen.host
        return Endpoint(host: host, port: c.listen.port).description
    }

    /// How long admin credentials live (`cluster init`'s and renewed ones).
    public static let adminLifetime: Double = 365 * 86400

    public static func run(_ c: CoordinatorConfig, adminDir: String, now: Double) throws -> Result {
        let pki = CoordinatorPKI(dataDir: c.dataDir)
        if pki.exists || FS.exists(c.databasePath) {
            throw ClusterError.conflict("\(c.dataDir) already holds a cluster (remove the directory to start over)")
        }
        let admin = AdminCredentials(dir: adminDir)
        if FS.exists(admin.cert) || FS.exists(admin.key) {
            throw ClusterError.conflict("\(adminDir) already holds admin credentials")
        }
        var made: [String] = []
        do {
            for d in [c.dataDir, pki.dir, adminDir] where !FS.exists(d) {
                try FS.makeDirectories(d, mode: 0o700)
                made.append(d)
            }
            let clusterID = Identifiers.make()
            let ca = try CertificateAuthority.create(clusterID: clusterID, now: now)
            let serverKey = try PrivateKey.generate()
            let server = try issueServer(ca: ca, key: serverKey, config: c, now: now)
            let adminKey = try PrivateKey.generate()
            let adminCert = try ca.issue(key: adminKey, commonName: "admin", role: .admin, notBefore: now - 300, notAfter: now + adminLifetime)

            try writePublic(pki.caCert, try ca.certificate.pem())
            try writeSecret(pki.caKey, try ca.key.pem())
            try SecretBox.generate().write(to: SecretBox.keyPath(dataDir: c.dataDir))
            try writePublic(pki.serverCert, try server.pem())
            try writeSecret(pki.serverKey, try serverKey.pem())
            try writeSecret(admin.caCert, try ca.certificate.pem())
            try writeSecret(admin.cert, try adminCert.pem())
            try writeSecret(admin.key, try adminKey.pem())
            let address = cliAddress(c)
            try writeSecret(admin.coordinatorFile, address + "\n")

            let store = try Store(path: c.databasePath)
            var b = StoreBatch()
            b.meta = ["cluster_id": clusterID, "cluster_cidr": c.clusterCIDR, "node_subnet_prefix": String(c.nodeSubnetPrefix),
                      "created": Timestamp(seconds: Int64(now)).rfc3339, "ca_fingerprint": ca.certificate.fingerprint]
            b.certs = [CertRecord(serial: server.serial, subject: "coordinator", role: PKIRole.coordinator.rawValue, notAfter: server.notAfter, revoked: false),
                       CertRecord(serial: adminCert.serial, subject: "admin", role: PKIRole.admin.rawValue, notAfter: adminCert.notAfter, revoked: false)]
            try store.commit(b)
            return Result(clusterID: clusterID, caFingerprint: ca.certificate.fingerprint, adminDir: adminDir, coordinatorAddress: address)
        } catch {
            for f in [pki.caCert, pki.caKey, SecretBox.keyPath(dataDir: c.dataDir), pki.serverCert, pki.serverKey, admin.caCert, admin.cert, admin.key, admin.coordinatorFile,
                      c.databasePath, c.databasePath + "-wal", c.databasePath + "-shm"] {
                try? FS.unlinkIfPresent(f)
            }
            for d in made.reversed() { try? FS.removeTree(d) }
            throw error
        }
    }

    /// The coordinator's own certificate: its names and addresses as SANs.
    static func issueServer(ca: CertificateAuthority, key: PrivateKey, config c: CoordinatorConfig, now: Double) throws(ClusterError) -> Certificate {
        try ca.issue(key: key, commonName: "coordinator", role: .coordinator, notBefore: now - 300, notAfter: now + 365 * 86400, sans: serverNames(c))
    }

    /// The names and addresses in a coordinator's certificate: loopback, its
    /// Raft host, the advertised ones and a listen address that is not a wildcard.
    static func serverNames(_ c: CoordinatorConfig) -> [String] {
        var sans = ["localhost", "127.0.0.1"] + (c.raft.map { [$0.address.host] } ?? []) + c.advertise
        if c.listen.host != "0.0.0.0" && c.listen.host != "::" { sans.append(c.listen.host) }
        var seen = Set<String>()
        return sans.filter { seen.insert($0).inserted }
    }
}
