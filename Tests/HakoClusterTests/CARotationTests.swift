import Foundation
@testable import HakoCluster
import HakoSystem
import Synchronization
import Testing

@Suite struct CARotationStateTests {
    @Test func theRotationCompletesWhenEveryNodeSettled() throws {
        var r = CARotation(started: 10, previous: "old", next: "new", nodes: ["a", "b"])
        #expect(!r.isComplete)
        r.settled("a")
        r.settled("x")   // not pending: no effect
        #expect(r.pending == ["b"] && !r.isComplete)
        let stored = try r.encoded()
        #expect(CARotation.decode(stored) == r, "what the store keeps reads back the same")
        r.settled("b")
        #expect(r.isComplete)
        #expect(CARotation.decode("") == nil && CARotation.decode(nil) == nil && CARotation.decode("{") == nil)
    }

    @Test func aTrustBundleFindsTheRootThatSignedACertificate() throws {
        let now = Timestamp.now().secondsSince1970
        let old = try CertificateAuthority.create(clusterID: "c1", now: now)
        let new = try CertificateAuthority.create(clusterID: "c1", now: now)
        let other = try CertificateAuthority.create(clusterID: "c2", now: now)
        let key = try PrivateKey.generate()
        let byOld = try old.issue(key: key, commonName: "n1", role: .node, notBefore: now - 60, notAfter: now + 3600)
        let byNew = try new.issue(key: key, commonName: "n1", role: .node, notBefore: now - 60, notAfter: now + 3600)
        let byOther = try other.issue(key: key, commonName: "n1", role: .node, notBefore: now - 60, notAfter: now + 3600)
        let both = TrustBundle([new.certificate, old.certificate])
        let reread = try TrustBundle(pem: try both.pem())
        #expect(reread.fingerprints == [new.certificate.fingerprint, old.certificate.fingerprint], "order kept: the signing root first")
        #expect(reread.signing?.fingerprint == new.certificate.fingerprint)
        #expect(reread.issuer(of: byOld)?.fingerprint == old.certificate.fingerprint)
        #expect(reread.issuer(of: byNew)?.fingerprint == new.certificate.fingerprint)
        #expect(reread.issuer(of: byOther) == nil)
        try reread.verify(byOld)
        #expect(throws: ClusterError.self) { try TrustBundle([new.certificate]).verify(byOld) }
        #expect(throws: ClusterError.self) { try reread.verify(byOther) }
    }
}

/// The rotation in the coordinator's core: simulated nodes, a manual clock.
@Suite struct CARotationCoreTests {
    func renew(_ n: SimNode) throws -> Certificate {
        let key = try PrivateKey.generate()
        let reply = n.fixture.core.handle(try envelope(MessageType.renew, RenewRequest(csr: try CertificateRequest(key: key).pem())),
                                          from: .node(n.id), connection: n.connection, address: "x")
        n.fixture.core.flush()
        return try Certificate(pem: try decodeLine(try #require(reply)).body(RenewReply.self).certificate)
    }

    @Test func nodesMoveToTheNewRootAndTheOldOneIsDropped() throws {
        let f = try CoreFixture()
        let a = try SimNode(f, name: "a"), b = try SimNode(f, name: "b")
        let pki = CoordinatorPKI(dataDir: f.config.dataDir)
        let oldRoot = try pki.loadTrust().roots[0]
        let adminKey = try PrivateKey.generate()
        let r = try f.admin(MessageType.caRotate, CARotateRequest(csr: try CertificateRequest(key: adminKey).pem()), as: CARotateReply.self)
        #expect(r.status.rotating && r.status.pending == ["a", "b"] && r.status.previous == oldRoot.fingerprint)
        let newRoot = try pki.loadTrust().roots[0]
        #expect(r.status.fingerprint == newRoot.fingerprint && newRoot.fingerprint != oldRoot.fingerprint)
        #expect(try pki.loadTrust().fingerprints == [newRoot.fingerprint, oldRoot.fingerprint], "both roots trusted on disk")
        try Certificate(pem: r.certificate).verify(against: newRoot)
        // Every node in session is told the new bundle.
        let told = f.core.takeOutgoing().compactMap { o -> Int? in
            guard case .send(let c, let line) = o, let env = try? decodeLine(line), env.type == MessageType.caUpdate,
                  let b = try? TrustBundle(pem: try env.body(CAUpdate.self).bundle), b.roots.count == 2 else { return nil }
            return c
        }
        #expect(Set(told) == [a.connection, b.connection])
        // No joins while it rotates: a token pins the root the coordinator presents.
        #expect(throws: ClusterError.self) { try f.token() }
        // A second `rotate` joins the running rotation.
        let again = try f.admin(MessageType.caRotate, CARotateRequest(csr: try CertificateRequest(key: adminKey).pem()), as: CARotateReply.self)
        #expect(again.status.fingerprint == newRoot.fingerprint)

        try renew(a).verify(against: newRoot)
        #expect(try f.admin(MessageType.caStatus, EmptyBody(), as: CAStatus.self).pending == ["b"])
        // A coordinator restart in the middle goes on with the same rotation.
        try f.reopen(trust: try pki.loadTrust())
        #expect(f.core.rotation?.pending == [b.id])
        try b.connect()
        try renew(b).verify(against: newRoot)
        f.tick()
        let done = try f.admin(MessageType.caStatus, EmptyBody(), as: CAStatus.self)
        #expect(!done.rotating && done.pending.isEmpty && done.fingerprint == newRoot.fingerprint)
        #expect(try TrustBundle(pem: done.bundle).fingerprints == [newRoot.fingerprint])
        #expect(!FS.exists(pki.previousCACert) && f.core.trust.roots.count == 1)
        try pki.loadServer().0.verify(against: newRoot)
        _ = try f.token()
    }

    @Test func aRemovedNodeDoesNotHoldTheRotationBack() throws {
        let f = try CoreFixture()
        let a = try SimNode(f, name: "a")
        let gone = try SimNode(f, name: "gone")
        gone.disconnect()
        _ = try f.admin(MessageType.caRotate, CARotateRequest(csr: try CertificateRequest(key: try PrivateKey.generate()).pem()), as: CARotateReply.self)
        _ = try renew(a)
        f.tick()
        #expect(f.core.rotation?.pending == [gone.id], "a node that is down keeps the old root trusted")
        try f.admin(MessageType.nodeRemove, NodeRemoveRequest(node: gone.id, force: true), as: EmptyBody.self)
        f.tick()
        #expect(f.core.rotation == nil)
    }
}
