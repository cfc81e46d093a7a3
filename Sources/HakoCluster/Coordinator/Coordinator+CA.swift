#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import Synchronization

/// With several coordinators a CA rotation is a replicated operation: the
/// new root (its key sealed, `CARoot`) and the rotation's progress
/// (`CARotation`: nodes and coordinators still to move) are in the store,
/// so every coordinator installs the root when it applies the entry and a
/// new leader carries the rotation on. This keeps a coordinator's `pki/` in
/// line with what it applied; `Coordinator.rotationWorker` tells the leader
/// how far this coordinator got.
final class CAFollower: Sendable {
    let config: CoordinatorConfig
    let box: SecretBox?
    let clusterID: String
    let log: ClusterLog
    /// `ca_root` and `ca_rotation` as last applied here; the lock also keeps
    /// the Raft thread and the worker from changing `pki/` at once.
    private let applied = Mutex<[String: String]>([:])

    init(config: CoordinatorConfig, box: SecretBox?, clusterID: String, log: ClusterLog) {
        self.config = config
        self.box = box
        self.clusterID = clusterID
        self.log = log
    }

    /// The rotation as last applied here.
    var rotation: CARotation? { applied.withLock { CARotation.decode($0[CARotation.metaKey]) } }

    /// Follows the store's meta (Raft thread, at every entry that changes the
    /// CA, a snapshot, and at start): whether `pki/` changed, so that the TLS
    /// contexts are rebuilt.
    func follow(_ meta: [String: String]) -> Bool {
        applied.withLock { kept in
            kept[CARoot.metaKey] = meta[CARoot.metaKey]
            kept[CARotation.metaKey] = meta[CARotation.metaKey]
            do { return try apply(kept) } catch {
                log.error("CA rotation: cannot bring \(CoordinatorPKI(dataDir: config.dataDir).dir) in line with the cluster's CA (trying again): \(error)")
                return false
            }
        }
    }

    /// Again what was last applied (a failure of the disk's, tried again).
    func followAgain() -> Bool { follow(applied.withLock { $0 }) }

    /// Runs `body` while nothing else changes `pki/`.
    func locked(_ body: () throws -> Void) throws {
        try applied.withLock { _ in try body() }
    }

    /// The new root installed (the current one kept as the previous root),
    /// this coordinator's certificate of it made and kept aside; once the
    /// rotation has ended, the previous root dropped (and the certificate
    /// presented, if the leader never said to: the rotation ended without it).
    private func apply(_ meta: [String: String]) throws(ClusterError) -> Bool {
        guard let text = meta[CARoot.metaKey], !text.isEmpty else { return false }
        guard let box else { throw .security("no secrets key to open the CA key the store holds") }
        let root = try CARoot.open(text, with: box, clusterID: clusterID)
        let pki = CoordinatorPKI(dataDir: config.dataDir)
        let current = try Certificate(pem: try pki.read(pki.caCert))
        if current.fingerprint != root.certificate.fingerprint, root.certificate.notBefore < current.notBefore {
            // An earlier rotation's entry, replayed by a coordinator that holds
            // a newer root (it joined after it, or catches up through the log).
            return false
        }
        var changed = try pki.install(root)
        if changed { log.info("CA rotation: installed the new root \(root.certificate.fingerprint.prefix(16)); both roots trusted") }
        let rotation = CARotation.decode(meta[CARotation.metaKey])
        let (cert, key) = try pki.loadServer()
        if (try? cert.verify(against: root.certificate)) == nil {
            let kept = try? Certificate(pem: try pki.read(pki.nextServerCert))
            let usable = kept.map { (try? $0.verify(against: root.certificate)) != nil && $0.publicKeyMatches(key) } ?? false
            if !usable {
                let next = try ClusterInit.issueServer(ca: root, key: key, config: config, now: Double(Timestamp.now().secondsSince1970))
                try writePublic(pki.nextServerCert, try next.pem())
                log.info("CA rotation: made this coordinator's certificate of the new root (\(next.serial)); presented once every node and coordinator trusts it")
            }
            if rotation == nil {
                try pki.presentNext()
                changed = true
            }
        } else if rotation == nil {
            try? FS.unlinkIfPresent(pki.nextServerCert)
        }
        if rotation == nil, FS.exists(pki.previousCACert) {
            try pki.dropPrevious()
            changed = true
            log.info("CA rotation complete here: only \(root.certificate.fingerprint.prefix(16)) is trusted")
        }
        return changed
    }
}

extension Coordinator {
    /// A follower whose statement of what it reads is not the store's (it
    /// started, or was upgraded) tells the leader, which commits it.
    func stateReads(_ me: UInt64) {
        guard let replica, replica.statedReads[me] != replica.ownReads else { return }
        do {
            let pki = CoordinatorPKI(dataDir: config.dataDir)
            let (cert, key) = try pki.loadServer()
            let client = try ClusterClient.leader(among: [clientAddress], tls: try TLSContext.client(certificate: cert, key: key, trusting: try pki.loadTrust().roots), timeout: 5)
            defer { client.close() }
            _ = try client.request(MessageType.coordinatorReads, CoordinatorReadsStatement(raftID: me, reads: replica.ownReads.encoded), as: EmptyBody.self, timeout: 10)
            log.info("told the leader this coordinator reads log entries up to format \(replica.ownReads.entryFormat)")
        } catch {
            log.debug("cannot tell the leader what this coordinator reads yet: \(error)")
        }
    }

    /// The TLS identity and trust from `pki/` again, for the connections
    /// accepted and made from now on: the listener's and the Raft transport's
    /// (open connections keep theirs). On the loop's thread.
    func reloadIdentity() {
        do {
            let pki = CoordinatorPKI(dataDir: config.dataDir)
            let trust = try pki.loadTrust()
            tls = try Coordinator.serverContext(pki: pki, trust: trust)
            if let replica {
                let (cert, key) = try pki.loadServer()
                guard let chain = trust.issuer(of: cert) ?? trust.signing else { throw ClusterError.security("no trusted CA") }
                try replica.transport.reload(RaftTransport.Credentials(certificate: cert, key: key, chain: chain, trust: trust, clusterID: core.clusterID))
            }
            log.info("TLS: trusting \(trust.roots.count) CA\(trust.roots.count == 1 ? "" : "s") for new connections")
        } catch {
            log.error("cannot rebuild the TLS context: \(error)")
        }
    }

    /// A follower's part, on a thread of its own: what it reads stated to
    /// the leader (`stateReads`), and in a CA rotation: once it
    /// holds the new root (and its certificate of it) it tells the leader;
    /// once the leader says every node and coordinator trusts the new root,
    /// it presents that certificate and tells the leader again. Asked every
    /// second while the rotation it applied waits for it (a new leader is
    /// found the same way), until `stop`.
    func followerWorker() {
        guard let me = config.raft?.id else { return }
        while !stopped.load(ordering: .relaxed) {
            usleep(1_000_000)
            if !leadingNow.load(ordering: .relaxed) { stateReads(me) }
            guard !leadingNow.load(ordering: .relaxed), let r = caFollower.rotation,
                  r.coordinators.contains(me) || r.presenting.contains(me) else { continue }
            if caFollower.followAgain() { loop.post { [weak self] in self?.reloadIdentity() } }
            do {
                let pki = CoordinatorPKI(dataDir: config.dataDir)
                let trust = try pki.loadTrust()
                // Not installed yet (the entry not applied, or the disk failing).
                guard let root = trust.signing, root.fingerprint == r.next else { continue }
                let (cert, key) = try pki.loadServer()
                let presenting = (try? cert.verify(against: root)) != nil
                let next = presenting ? cert : try Certificate(pem: try pki.read(pki.nextServerCert))
                let client = try ClusterClient.leader(among: [clientAddress], tls: try TLSContext.client(certificate: cert, key: key, trusting: trust.roots), timeout: 5)
                defer { client.close() }
                let reply = try client.request(MessageType.coordinatorRotation,
                                               CoordinatorRotationRequest(raftID: me, certificate: try next.pem(), presenting: presenting),
                                               as: CoordinatorRotationReply.self, timeout: 10)
                if reply.present, !presenting {
                    try caFollower.locked { try pki.presentNext() }
                    log.info("CA rotation: every node and coordinator trusts \(root.fingerprint.prefix(16)); presenting this coordinator's certificate of it")
                    loop.post { [weak self] in self?.reloadIdentity() }
                }
            } catch {
                log.debug("CA rotation: cannot tell the leader yet: \(error)")
            }
        }
    }
}
