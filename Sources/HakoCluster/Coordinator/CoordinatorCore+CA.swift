import HakoSystem

/// CA rotation (`hako cluster ca rotate`, as `docker swarm ca --rotate`): a
/// new root signs from the start; both roots are trusted while every node
/// renews over its session (told by `ca.update`); once none holds a
/// certificate of the previous root, the coordinator takes a certificate of
/// the new one and the previous root is dropped.
extension CoordinatorCore {
    var pki: CoordinatorPKI { CoordinatorPKI(dataDir: config.dataDir) }

    /// At start: the rotation the store and the files describe (a coordinator
    /// stopped in the middle goes on with it).
    func resumeRotation() {
        rotation = CARotation.decode(state.meta[CARotation.metaKey])
        if trust.roots.count > 1, rotation == nil {
            // The files changed but the store did not: every node is pending again.
            rotation = CARotation(started: clock.wall(), previous: trust.roots[1].fingerprint, next: ca.certificate.fingerprint, nodes: state.nodes.keys)
            storeRotation()
        } else if trust.roots.count == 1, rotation != nil {
            rotation = nil
            storeRotation()
        }
        if var r = rotation {
            r.pending = r.pending.filter { state.nodes[$0] != nil }
            rotation = r
            log.info("CA rotation to \(r.next.prefix(16)) in progress: \(r.pending.count) nodes to renew")
        }
    }

    func storeRotation() {
        state.setMeta(CARotation.metaKey, (try? rotation?.encoded()) ?? "")
    }

    /// `ca.rotate`: a new root (unless a rotation runs already), every
    /// connected node told, and admin credentials of the new root.
    func rotateCA(_ r: CARotateRequest) throws -> CARotateReply {
        let csr = try CertificateRequest(pem: r.csr)
        let wall = clock.wall()
        if rotation == nil {
            let new = try CertificateAuthority.create(clusterID: clusterID, now: wall,
                                                     name: "hako cluster CA \(Timestamp(seconds: Int64(wall)).rfc3339)")
            let voters = replicate == nil ? [] : self.voters()
            if replicate == nil {
                try pki.beginRotation(new)
            } else {
                // Through the log to every coordinator, which installs it when
                // it applies the entry (this one too, before anyone hears of it).
                guard let secretBox else { throw ClusterError.security("no secrets key to seal the new CA key with") }
                state.setMeta(CARoot.metaKey, try CARoot.seal(new, with: secretBox))
            }
            let previous = ca.certificate
            ca = new
            trust = TrustBundle([new.certificate, previous])
            // This coordinator holds the new root once the entry is applied here;
            // every coordinator presents a certificate of it before the old one goes.
            rotation = CARotation(started: wall, previous: previous.fingerprint, next: new.certificate.fingerprint, nodes: state.nodes.keys,
                                  coordinators: voters.subtracting(raftID.map { [$0] } ?? []), presenting: voters)
            storeRotation()
            tlsGeneration += 1
            broadcastTrust()
            record(ClusterEvent(time: wall, kind: "ca", action: "rotating", id: new.certificate.fingerprint, name: "",
                                message: "\(state.nodes.count) nodes to renew"))
            log.info("CA rotation: new root \(new.certificate.fingerprint.prefix(16)), \(state.nodes.count) nodes to renew; \(previous.fingerprint.prefix(16)) trusted until they have")
        }
        let cert = try issueAdmin(csr)
        return CARotateReply(certificate: try cert.pem(), status: try caStatus())
    }

    func issueAdmin(_ csr: CertificateRequest) throws -> Certificate {
        let v = CertificateAuthority.validity(now: clock.wall(), lifetime: ClusterInit.adminLifetime)
        let cert = try ca.issue(request: csr, commonName: "admin", role: .admin, notBefore: v.notBefore, notAfter: v.notAfter)
        state.put(CertRecord(serial: cert.serial, subject: "admin", role: PKIRole.admin.rawValue, notAfter: cert.notAfter, revoked: false))
        log.info("issued admin credentials until \(Timestamp(seconds: Int64(cert.notAfter)).rfc3339)")
        return cert
    }

    func caStatus() throws -> CAStatus {
        let coordinators = (rotation?.coordinators ?? []).union(rotation?.presenting ?? []).sorted().map { "coordinator \($0)" }
        let pending = (rotation?.pending ?? []).map { state.nodes[$0]?.name ?? $0 }.sorted() + coordinators
        return CAStatus(fingerprint: ca.certificate.fingerprint, rotating: rotation != nil, previous: rotation?.previous,
                        started: rotation?.started, pending: pending, bundle: try trust.pem())
    }

    /// A node holds a certificate of the new root (or left the cluster).
    func settleRotation(_ node: String) {
        guard var r = rotation, r.pending.contains(node) else { return }
        r.settled(node)
        rotation = r
        storeRotation()
        log.info("CA rotation: node \(state.nodes[node]?.name ?? node) renewed, \(r.pending.count) to go")
    }

    /// Every node renewed: the coordinator's own certificate from the new
    /// root, the previous root no longer trusted, the nodes told. With several
    /// coordinators, once every node and coordinator trusts the new root this
    /// one presents its certificate of it, and the previous root goes only
    /// when every coordinator presents one.
    func finishRotationIfComplete() {
        guard var r = rotation, clock.monotonic() >= rotationRetryAt else { return }
        do {
            let wall = clock.wall()
            if replicate != nil {
                guard r.everyoneTrustsTheNewRoot else { return }
                if let me = raftID, r.presenting.contains(me) {
                    let cert = try presentOwnCertificate(now: wall)
                    r.presenting.remove(me)
                    rotation = r
                    storeRotation()
                    log.info("CA rotation: every node and coordinator trusts \(r.next.prefix(16)); this coordinator presents its certificate of it (\(cert.serial))")
                }
                guard r.isComplete else { return }
            } else {
                guard r.isComplete else { return }
                let (_, key) = try pki.loadServer()
                let cert = try ClusterInit.issueServer(ca: ca, key: key, config: config, now: wall)
                try pki.finishRotation(serverCertificate: cert)
                state.put(CertRecord(serial: cert.serial, subject: "coordinator", role: PKIRole.coordinator.rawValue, notAfter: cert.notAfter, revoked: false))
            }
            // With Raft, every coordinator drops the previous root when it applies this.
            trust = TrustBundle([ca.certificate])
            rotation = nil
            storeRotation()
            tlsGeneration += 1
            broadcastTrust()
            record(ClusterEvent(time: wall, kind: "ca", action: "rotated", id: ca.certificate.fingerprint, name: "",
                                message: "root \(r.previous.prefix(16)) no longer trusted"))
            log.info("CA rotation complete: every node holds a certificate of \(r.next.prefix(16))\(replicate == nil ? "" : " and every coordinator presents one"); \(r.previous.prefix(16)) is no longer trusted")
        } catch {
            rotationRetryAt = clock.monotonic() + 10
            log.error("cannot finish the CA rotation (trying again in 10 s): \(error)")
        }
    }

    /// With Raft: this coordinator's certificate of the new root (kept aside
    /// when the root was installed, else made now) presented from now on, and
    /// recorded bound to its Raft id (a removal revokes it).
    func presentOwnCertificate(now: Double) throws -> Certificate {
        let (current, key) = try pki.loadServer()
        var cert = current
        if (try? current.verify(against: ca.certificate)) == nil {
            if let kept = try? Certificate(pem: try FS.readString(pki.nextServerCert)), (try? kept.verify(against: ca.certificate)) != nil, kept.publicKeyMatches(key) {
                cert = kept
            } else {
                cert = try ClusterInit.issueServer(ca: ca, key: key, config: config, now: now)
                try writePublic(pki.nextServerCert, try cert.pem())
            }
            try pki.presentNext()
        }
        recordCoordinatorCertificate(cert, raftID: raftID)
        tlsGeneration += 1
        return cert
    }

    func recordCoordinatorCertificate(_ cert: Certificate, raftID: UInt64?) {
        guard state.certs[cert.serial] == nil else { return }
        state.put(CertRecord(serial: cert.serial, subject: raftID.map(RaftReplica.certificateSubject) ?? "coordinator",
                             role: PKIRole.coordinator.rawValue, notAfter: cert.notAfter, revoked: false))
    }

    /// A new leader that had not told the previous one that it holds the new
    /// root: it does (it applied everything, the rotation's root included).
    func settleOwnRotation() {
        guard var r = rotation, let me = raftID, r.coordinators.contains(me) else { return }
        let candidates = [try? Certificate(pem: try FS.readString(pki.nextServerCert)), try? pki.loadServer().0]
        guard let kept = candidates.compactMap({ $0 }).first(where: { (try? $0.verify(against: ca.certificate)) != nil }) else { return }
        recordCoordinatorCertificate(kept, raftID: me)
        r.coordinators.remove(me)
        rotation = r
        storeRotation()
        log.info("CA rotation: this coordinator holds \(r.next.prefix(16)) and a certificate of it")
    }

    /// `coordinator.rotation` (the leader, from another coordinator): it holds
    /// the new root and `certificate` of it; `presenting`: it presents it.
    func coordinatorRotation(_ req: CoordinatorRotationRequest) throws -> CoordinatorRotationReply {
        guard var r = rotation else { return CoordinatorRotationReply(present: true, done: true) }
        let cert = try Certificate(pem: req.certificate)
        try cert.verify(against: ca.certificate)
        guard cert.role == PKIRole.coordinator.rawValue, cert.organization == "hako-cluster-\(clusterID)" else {
            throw ClusterError.security("not a coordinator certificate of this cluster")
        }
        guard voters().contains(req.raftID) else { throw ClusterError.notFound("raft id \(req.raftID) is not a voter") }
        recordCoordinatorCertificate(cert, raftID: req.raftID)
        var said: [String] = []
        if r.coordinators.remove(req.raftID) != nil { said.append("holds \(r.next.prefix(16)) and a certificate of it") }
        if req.presenting, r.everyoneTrustsTheNewRoot, r.presenting.remove(req.raftID) != nil { said.append("presents it") }
        if !said.isEmpty {
            rotation = r
            storeRotation()
            log.info("CA rotation: coordinator \(req.raftID) \(said.joined(separator: " and ")); \(r.coordinators.count + r.presenting.count) coordinator steps and \(r.pending.count) nodes to go")
        }
        return CoordinatorRotationReply(present: r.everyoneTrustsTheNewRoot, done: false)
    }

    /// A coordinator removed from the voters holds the rotation back no longer.
    func coordinatorRemoved(_ id: UInt64) {
        guard var r = rotation, r.coordinators.contains(id) || r.presenting.contains(id) else { return }
        r.removed(coordinator: id)
        rotation = r
        storeRotation()
    }

    /// `ca.update` to every node in session.
    func broadcastTrust() {
        for node in dispatcher.nodes.keys.sorted() { sendTrust(node) }
    }

    func sendTrust(_ node: String) {
        guard let conn = dispatcher.nodes[node]?.connection, let bundle = try? trust.pem() else { return }
        send(conn, WireEncoder.request(MessageType.caUpdate, id: nil, CAUpdate(bundle: bundle)))
    }
}
