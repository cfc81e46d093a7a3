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
            try pki.beginRotation(new)
            let previous = ca.certificate
            ca = new
            trust = TrustBundle([new.certificate, previous])
            rotation = CARotation(started: wall, previous: previous.fingerprint, next: new.certificate.fingerprint, nodes: state.nodes.keys)
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
        let pending = (rotation?.pending ?? []).map { state.nodes[$0]?.name ?? $0 }.sorted()
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
    /// root, the previous root no longer trusted, the nodes told.
    func finishRotationIfComplete() {
        guard let r = rotation, r.isComplete, clock.monotonic() >= rotationRetryAt else { return }
        do {
            let wall = clock.wall()
            let (_, key) = try pki.loadServer()
            let cert = try ClusterInit.issueServer(ca: ca, key: key, config: config, now: wall)
            try pki.finishRotation(serverCertificate: cert)
            state.put(CertRecord(serial: cert.serial, subject: "coordinator", role: PKIRole.coordinator.rawValue, notAfter: cert.notAfter, revoked: false))
            trust = TrustBundle([ca.certificate])
            rotation = nil
            storeRotation()
            tlsGeneration += 1
            broadcastTrust()
            record(ClusterEvent(time: wall, kind: "ca", action: "rotated", id: ca.certificate.fingerprint, name: "",
                                message: "root \(r.previous.prefix(16)) no longer trusted"))
            log.info("CA rotation complete: every node holds a certificate of \(r.next.prefix(16)); \(r.previous.prefix(16)) is no longer trusted")
        } catch {
            rotationRetryAt = clock.monotonic() + 10
            log.error("cannot finish the CA rotation (trying again in 10 s): \(error)")
        }
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
