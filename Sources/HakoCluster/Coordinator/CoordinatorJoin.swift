#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// `hako coordinator --config F --join TOKEN ADDR`: a coordinator joins an
/// existing cluster as a Raft voter.
///
/// 1. Without a client certificate, the coordinator at ADDR pinned by the CA
///    fingerprint in the token: a coordinator token and a certificate request
///    for a key made here give a coordinator certificate.
/// 2. Over mutual TLS with that certificate, at the leader: the CA (its key
///    included) and the voters — the CA key never crosses a connection that
///    is not mutually authenticated.
/// 3. The local store gets the cluster's identity; Raft starts without a
///    configuration of its own, and `add` (once it runs) asks the leader to
///    make it a voter: Raft then catches it up (a snapshot, then the log).
public enum CoordinatorJoin {
    /// Marks a data directory whose Raft joined a cluster: it never starts one of its own.
    public static func markerPath(_ dataDir: String) -> String { dataDir + "/pki/joined" }

    public static func run(token text: String, address: String, config: CoordinatorConfig, log: ClusterLog) throws {
        guard let raft = config.raft else {
            throw ClusterError.config(key: "raft_address", reason: "a joining coordinator needs raft_address and raft_id in its configuration")
        }
        let pki = CoordinatorPKI(dataDir: config.dataDir)
        if pki.exists || FS.exists(config.databasePath) {
            throw ClusterError.conflict("\(config.dataDir) already holds a cluster (remove the directory to join again)")
        }
        let token = try JoinToken(parsing: text)
        var ep = try Endpoint(parsing: address, defaultPort: CoordinatorConfig.defaultPort)
        let key = try PrivateKey.generate()
        let csr = try CertificateRequest(key: key)
        let sans = ClusterInit.serverNames(config)

        // A follower names the leader: the join follows it (a few hops at most,
        // each coordinator pinned by the token's CA fingerprint).
        var ca: Certificate
        var joined: CoordinatorJoinReply
        var hops = 0
        while true {
            let anonymous = try ClusterClient.connect(ep, tls: try TLSContext.client(certificate: nil, key: nil, trust: nil), timeout: 15)
            defer { anonymous.close() }
            ca = try Agent.pin(anonymous.peerChain, fingerprint: token.caFingerprint, endpoint: ep)
            do {
                joined = try anonymous.request(MessageType.coordinatorJoin, CoordinatorJoinRequest(token: token.description, csr: try csr.pem(), sans: sans),
                                               as: CoordinatorJoinReply.self, timeout: 30)
                break
            } catch ClusterError.wire(code: WireCode.notLeader.rawValue, let m) {
                hops += 1
                guard hops <= 3, let r = m.firstRange(of: " the leader is "),
                      let leader = try? Endpoint(parsing: String(m[r.upperBound...]).trimmed, defaultPort: CoordinatorConfig.defaultPort), leader != ep else {
                    throw ClusterError.network("\(ep) does not lead (\(m)): join through the leader")
                }
                log.info("\(ep) does not lead: joining through the leader, \(leader)")
                ep = leader
            }
        }
        let cert = try Certificate(pem: joined.certificate)
        try cert.verify(against: ca)
        guard cert.publicKeyMatches(key), cert.role == PKIRole.coordinator.rawValue else {
            throw ClusterError.security("\(ep) issued a certificate that is not this coordinator's")
        }

        let tls = try TLSContext.client(certificate: cert, key: key, trusting: [ca])
        let leader = try ClusterClient.leader(among: [ep.description], tls: tls, timeout: 15)
        defer { leader.close() }
        let secrets = try leader.request(MessageType.coordinatorSecrets, EmptyBody(), as: CoordinatorSecrets.self, timeout: 30)
        let caCert = try Certificate(pem: secrets.caCertificate)
        guard caCert.fingerprint == ca.fingerprint else { throw ClusterError.security("the leader sent another CA") }
        let caKey = try PrivateKey(pem: secrets.caKey)
        guard caCert.publicKeyMatches(caKey) else { throw ClusterError.security("the CA key the leader sent is not the CA's") }
        var secretBox: SecretBox?
        if let hex = secrets.secretsKey {
            guard let key = SecretBox.hexBytes(hex) else { throw ClusterError.security("the leader sent a secrets key that is not hex") }
            secretBox = try SecretBox(key: key)
        }

        var made: [String] = []
        do {
            for d in [config.dataDir, pki.dir] where !FS.exists(d) {
                try FS.makeDirectories(d, mode: 0o700)
                made.append(d)
            }
            try writePublic(pki.caCert, secrets.caCertificate)
            try writeSecret(pki.caKey, secrets.caKey)
            // Without one (a leader older than secrets) this coordinator makes its own at its first start.
            try secretBox?.write(to: SecretBox.keyPath(dataDir: config.dataDir))
            try writePublic(pki.serverCert, try cert.pem())
            try writeSecret(pki.serverKey, try key.pem())
            try writePublic(markerPath(config.dataDir), "\(raft.id)\n")
            let store = try Store(path: config.databasePath)
            var b = StoreBatch()
            // The same values the log brings: the coordinator can start before it has caught up.
            b.meta = ["cluster_id": joined.clusterID, "cluster_cidr": joined.clusterCIDR, "node_subnet_prefix": String(joined.nodeSubnetPrefix)]
            try store.commit(b)
        } catch {
            for f in [pki.caCert, pki.caKey, SecretBox.keyPath(dataDir: config.dataDir), pki.serverCert, pki.serverKey, markerPath(config.dataDir),
                      config.databasePath, config.databasePath + "-wal", config.databasePath + "-shm"] {
                try? FS.unlinkIfPresent(f)
            }
            for d in made.reversed() { try? FS.removeTree(d) }
            throw error
        }
        let voters = secrets.members.count
        log.info("joined cluster \(joined.clusterID.prefix(12)) as a coordinator (\(voters) voter\(voters == 1 ? "" : "s") so far); asking the leader to add it")
        if (voters + 1) % 2 == 0 {
            log.warning("\(voters + 1) coordinators tolerate no more failures than \(voters) (\((voters - 1) / 2)): add one more")
        }
    }

    /// Asks the leader to make this coordinator a voter (after its Raft runs):
    /// retried with backoff and jitter until it is one, or `deadline` passes.
    public static func add(config: CoordinatorConfig, clientAddress: String, known: [String], log: ClusterLog, deadline: Double = 120) {
        guard let raft = config.raft else { return }
        let pki = CoordinatorPKI(dataDir: config.dataDir)
        let until = monotonicSeconds() + deadline
        var delay = 0.2
        while monotonicSeconds() < until {
            do {
                let (cert, key) = try pki.loadServer()
                let tls = try TLSContext.client(certificate: cert, key: key, trusting: try pki.loadTrust().roots)
                let c = try ClusterClient.leader(among: known, tls: tls, timeout: 10)
                defer { c.close() }
                _ = try c.request(MessageType.coordinatorAdd,
                                  CoordinatorAddRequest(raftID: raft.id, raftAddress: raft.address.description, address: clientAddress,
                                                        reads: CoordinatorReads(entryFormat: raft.newestEntryFormat, schema: Store.schemaVersion).encoded),
                                  as: EmptyBody.self, timeout: 90)
                log.info("a voter now (raft id \(raft.id))")
                return
            } catch {
                log.warning("not a voter yet: \(error)")
            }
            usleep(UInt32(delay * Double.random(in: 0.8...1.2) * 1e6))
            delay = min(delay * 2, 5)
        }
        log.error("the leader did not add this coordinator within \(Int(deadline)) s")
    }
}
