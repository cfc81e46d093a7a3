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

/// The rotation with several coordinators, in the leader's core and in a
/// follower's `pki/`: the new root travels in the store (its key sealed),
/// every coordinator says it holds it, then presents a certificate of it,
/// and only then is the old root dropped; a new leader carries it on.
@Suite struct CARotationReplicatedTests {
    func raftMode(_ f: CoreFixture, store: Store) {
        f.core.replicate = { try store.commit($0) }
        f.core.raftID = 1
        f.core.voters = { [1, 2, 3] }
    }

    func coordinator(_ f: CoreFixture, _ id: UInt64, _ cert: Certificate, presenting: Bool) throws -> CoordinatorRotationReply {
        let reply = f.core.handle(try envelope(MessageType.coordinatorRotation,
                                               CoordinatorRotationRequest(raftID: id, certificate: try cert.pem(), presenting: presenting)),
                                  from: .coordinator, connection: 7, address: "x")
        f.core.flush()
        let env = try decodeLine(try #require(reply))
        if env.type == MessageType.error { throw ClusterError.wire(code: env.error?.code.rawValue ?? "", message: env.error?.message ?? "") }
        return try env.body(CoordinatorRotationReply.self)
    }

    @Test func everyCoordinatorMovesBeforeTheOldRootGoes() throws {
        let f = try CoreFixture()
        let a = try SimNode(f, name: "a")
        // Coordinator 2's data directory: a copy of the first one's, as `raft_peers` clusters start.
        var follower = f.config
        follower.dataDir = f.dir.path + "/coord2"
        try FileManager.default.copyItem(atPath: f.config.dataDir, toPath: follower.dataDir)
        let store = try Store(path: f.config.databasePath)
        raftMode(f, store: store)
        let pki = CoordinatorPKI(dataDir: f.config.dataDir)
        let oldRoot = try pki.loadTrust().roots[0]

        let r = try f.admin(MessageType.caRotate, CARotateRequest(csr: try CertificateRequest(key: try PrivateKey.generate()).pem()), as: CARotateReply.self)
        #expect(r.status.pending == ["a", "coordinator 1", "coordinator 2", "coordinator 3"], "\(r.status.pending)")
        // The new root is in the store, its key sealed: the database never holds it in clear.
        let meta = try store.loadMeta()
        let sealed = try #require(meta[CARoot.metaKey])
        #expect(!sealed.contains("PRIVATE KEY"))
        let box = try #require(f.core.secretBox)
        let newRoot = try CARoot.open(sealed, with: box, clusterID: f.core.clusterID)
        #expect(newRoot.certificate.fingerprint == r.status.fingerprint && newRoot.certificate.fingerprint != oldRoot.fingerprint)
        #expect(throws: ClusterError.self, "another secrets key does not open it") {
            try CARoot.open(sealed, with: SecretBox.generate(), clusterID: f.core.clusterID)
        }

        // The leader applies its own entry as every coordinator does (Raft's apply).
        #expect(CAFollower(config: f.config, box: box, clusterID: f.core.clusterID, log: .silent).follow(meta))
        #expect(try pki.loadTrust().fingerprints == [newRoot.certificate.fingerprint, oldRoot.fingerprint])
        // A follower applies it: the new root installed beside the old one, its own certificate of it kept aside.
        let follow = CAFollower(config: follower, box: box, clusterID: f.core.clusterID, log: .silent)
        #expect(follow.follow(meta))
        let theirs = CoordinatorPKI(dataDir: follower.dataDir)
        #expect(try theirs.loadTrust().fingerprints == [newRoot.certificate.fingerprint, oldRoot.fingerprint])
        let kept = try Certificate(pem: try FS.readString(theirs.nextServerCert))
        try kept.verify(against: newRoot.certificate)
        try theirs.loadServer().0.verify(against: oldRoot)
        #expect(!follow.follow(meta), "applied again: nothing to do")

        // It says so; the leader waits for the node and coordinator 3 before anyone presents.
        #expect(try coordinator(f, 2, kept, presenting: false).present == false)
        #expect(throws: ClusterError.self, "a certificate of the old root is refused") {
            try coordinator(f, 3, try theirs.loadServer().0, presenting: false)
        }
        let key3 = try PrivateKey.generate()
        let now = f.clock.wall()
        let cert3 = try newRoot.issue(key: key3, commonName: "coordinator", role: .coordinator, notBefore: now - 60, notAfter: now + 86400)
        #expect(try coordinator(f, 3, cert3, presenting: false).present == false, "node a still holds the old root")
        #expect(f.core.state.certs[cert3.serial]?.subject == RaftReplica.certificateSubject(3), "bound to its Raft id: a removal revokes it")
        let reply = f.core.handle(try envelope(MessageType.renew, RenewRequest(csr: try CertificateRequest(key: try PrivateKey.generate()).pem())),
                                  from: .node(a.id), connection: a.connection, address: "x")
        #expect(reply != nil)
        f.core.flush()
        #expect(try coordinator(f, 2, kept, presenting: false).present, "everyone trusts the new root")

        // The leader presents its certificate of the new root; the old root stays until 2 and 3 do.
        f.tick()
        try pki.loadServer().0.verify(against: newRoot.certificate)
        #expect(f.core.rotation?.presenting == [2, 3])
        #expect(f.core.trust.roots.count == 2)

        // A new leader (the same store) carries the rotation on.
        try f.reopen(trust: try pki.loadTrust())
        raftMode(f, store: store)
        #expect(f.core.rotation?.presenting == [2, 3] && f.core.rotation?.pending.isEmpty == true)
        _ = try coordinator(f, 2, kept, presenting: true)
        f.tick()
        #expect(f.core.rotation != nil, "coordinator 3 does not present yet")
        _ = try coordinator(f, 3, cert3, presenting: true)
        f.tick()
        #expect(f.core.rotation == nil && f.core.trust.fingerprints == [newRoot.certificate.fingerprint])
        let done = try f.admin(MessageType.caStatus, EmptyBody(), as: CAStatus.self)
        #expect(!done.rotating && done.pending.isEmpty)

        // The follower applies the end: the old root dropped, its certificate of the new one presented.
        #expect(follow.follow(try store.loadMeta()))
        #expect(try theirs.loadTrust().fingerprints == [newRoot.certificate.fingerprint])
        try theirs.loadServer().0.verify(against: newRoot.certificate)
        #expect(!FS.exists(theirs.nextServerCert) && !FS.exists(theirs.previousCACert))
    }

    @Test func aRemovedCoordinatorDoesNotHoldTheRotationBack() throws {
        let f = try CoreFixture()
        let store = try Store(path: f.config.databasePath)
        raftMode(f, store: store)
        _ = try f.admin(MessageType.caRotate, CARotateRequest(csr: try CertificateRequest(key: try PrivateKey.generate()).pem()), as: CARotateReply.self)
        #expect(f.core.rotation?.coordinators == [2, 3])
        f.core.coordinatorRemoved(3)
        f.core.coordinatorRemoved(2)
        f.tick()
        #expect(f.core.rotation == nil, "no node, and the leader alone presents a certificate of the new root")
    }
}

/// The whole rotation over loopback: a real coordinator, two real agents
/// (tasks run by a fake runtime), the admin credentials.
@Suite struct CARotationLiveTests {
    final class Agents: @unchecked Sendable {
        let logs = Mutex<[String]>([])
    }
    final class Watch: @unchecked Sendable {
        let on = Mutex(true)
        let seen = Mutex<[NodeStatus]>([])
    }

    @Test func everyNodeMovesToTheNewRootWithoutLosingItsSession() throws {
        let live = try LiveCoordinator(clock: SystemClusterClock()) {
            $0.heartbeatPeriod = 0.2
            $0.downAfter = 2
        }
        let sink = Agents()
        let log = ClusterLog(component: "agent", level: .info, sink: { line in sink.logs.withLock { $0.append(line) } })
        var running: [(Agent, DispatchSemaphore, FakeRuntime, NodeCredentials)] = []
        defer {
            for (agent, stopped, _, _) in running {
                agent.stop()
                _ = stopped.wait(timeout: .now() + 10)
            }
        }
        for name in ["a", "b"] {
            let config = live.agentConfig(name)
            _ = try Agent.join(token: try live.token(), coordinator: live.address, config: config, capacity: FixedProbe().capacity(), log: .silent)
            let runtime = FakeRuntime()
            let agent = try Agent(config: config, runtime: runtime, probe: FixedProbe(), log: log)
            let stopped = DispatchSemaphore(value: 0)
            Thread { agent.run(); stopped.signal() }.start()
            running.append((agent, stopped, runtime, NodeCredentials(stateDir: config.stateDir)))
        }
        func containers() -> Set<String> {
            Set(running.flatMap { $0.2.tasks.withLock { $0.values.filter { $0.status == .running }.map(\.containerID) } })
        }
        func nodes() throws -> [NodeView] { try live.adminClient().request(MessageType.nodeList, EmptyBody(), as: NodeList.self).nodes }
        var spec = ServiceSpec(name: "web", image: "busybox:test")
        spec.replicas = 2
        _ = try live.adminClient().request(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
        var deadline = monotonicSeconds() + 15
        while containers().count < 2 && monotonicSeconds() < deadline { usleep(50_000) }
        let before = containers()
        try #require(before.count == 2, "the service's replicas run")
        try #require(try nodes().allSatisfy { $0.status == .ready })

        let pki = CoordinatorPKI(dataDir: live.config.dataDir)
        let oldRoot = try pki.loadTrust().roots[0]
        let oldAdmin = (try Certificate(pem: try FS.readString(live.admin.cert)), try PrivateKey(pem: try FS.readString(live.admin.key)))
        let oldNode = try running[0].3.load()

        // Watch the nodes from another connection while the rotation runs.
        let watch = Watch()
        let watcherDone = DispatchSemaphore(value: 0)
        Thread {
            let watcher = try? live.adminClient()
            while watch.on.withLock({ $0 }) {
                if let n = try? watcher?.request(MessageType.nodeList, EmptyBody(), as: NodeList.self) {
                    watch.seen.withLock { $0 += n.nodes.map(\.status) }
                }
                usleep(100_000)
            }
            watcherDone.signal()
        }.start()
        var progress: [CAStatus] = []
        let status = try live.admin.rotateCA(with: try live.adminClient(), timeout: 20) { progress.append($0) }
        watch.on.withLock { $0 = false }
        _ = watcherDone.wait(timeout: .now() + 5)
        #expect(!status.rotating, "pending: \(status.pending)")
        #expect(progress.first?.rotating == true)
        let newRoot = try pki.loadTrust().roots
        try #require(newRoot.count == 1 && newRoot[0].fingerprint != oldRoot.fingerprint)
        #expect(live.logged("CA rotation complete"))

        // Every node holds a certificate of the new root on disk, and ends trusting it alone.
        deadline = monotonicSeconds() + 5
        while monotonicSeconds() < deadline, !running.allSatisfy({ (try? $0.3.load().trust.fingerprints) == [newRoot[0].fingerprint] }) {
            usleep(50_000)
        }
        for (_, _, _, creds) in running {
            let (trust, cert, _) = try creds.load()
            try cert.verify(against: newRoot[0])
            #expect(trust.fingerprints == [newRoot[0].fingerprint])
        }
        // The admin's files too, and they still work.
        #expect(try TrustBundle(pem: try FS.readString(live.admin.caCert)).fingerprints == [newRoot[0].fingerprint])
        try Certificate(pem: try FS.readString(live.admin.cert)).verify(against: newRoot[0])
        // No session was lost: nodes stayed ready, heartbeats go on, the same containers run.
        #expect(!watch.seen.withLock { $0.isEmpty } && watch.seen.withLock { $0.allSatisfy { $0 == .ready } })
        #expect(!sink.logs.withLock { $0.contains { $0.contains("session with") && $0.contains("closed") } })
        usleep(600_000)
        #expect(try nodes().allSatisfy { $0.status == .ready && ($0.lastSeenAgo ?? 99) < 1 })
        #expect(containers() == before)

        // The old root is no longer trusted: its certificates are refused at
        // the handshake; one of the new root gets as far as its role allows.
        func attempt(_ cert: Certificate, _ key: PrivateKey) -> String? {
            do {
                let c = try ClusterClient.connect(try Endpoint(parsing: live.address),
                                                  tls: try TLSContext.client(certificate: cert, key: key, trusting: newRoot), timeout: 5)
                _ = try c.request(MessageType.nodeList, EmptyBody(), as: NodeList.self, timeout: 5)
                return nil
            } catch { return "\(error)" }
        }
        let oldAdminRefusal = try #require(attempt(oldAdmin.0, oldAdmin.1), "an admin certificate of the old root was accepted")
        let oldNodeRefusal = try #require(attempt(oldNode.cert, oldNode.key), "a node certificate of the old root was accepted")
        #expect(!oldAdminRefusal.contains("admin certificate") && !oldNodeRefusal.contains("admin certificate"), "\(oldNodeRefusal)")
        let (_, nodeCert, nodeKey) = try running[1].3.load()
        #expect(attempt(nodeCert, nodeKey)?.contains("needs the admin certificate") == true, "the new node certificate passes TLS")
        #expect(attempt(try Certificate(pem: try FS.readString(live.admin.cert)), try PrivateKey(pem: try FS.readString(live.admin.key))) == nil)
    }
}
