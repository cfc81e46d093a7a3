#if canImport(Glibc)
import Glibc
#endif
@testable import HakoCluster
import HakoSystem
import Synchronization
import Testing

/// Three replicas of the store in one process, Raft over mutual TLS on
/// loopback: a batch committed through the leader is in every store; the
/// leader stopped, another leads with the same content; a replica whose
/// directory was wiped catches up; a foreign cluster's coordinator is refused.
@Suite(.serialized) final class RaftReplicaTests {
    let dir = TempDir("raft")
    let clusterID = "raftcluster0001"
    let ca: CertificateAuthority
    let base = UInt16(20000 + Int(getpid()) % 20000)

    init() throws {
        ca = try CertificateAuthority.create(clusterID: clusterID, now: Timestamp.now().secondsSince1970)
    }

    func credentials(_ authority: CertificateAuthority, role: PKIRole = .coordinator) throws -> RaftTransport.Credentials {
        let key = try PrivateKey.generate()
        let now = Timestamp.now().secondsSince1970
        let cert = try authority.issue(key: key, commonName: role == .coordinator ? "coordinator" : "node-\(role.rawValue)", role: role,
                                       notBefore: now - 300, notAfter: now + 86400, sans: ["127.0.0.1"])
        return RaftTransport.Credentials(certificate: cert, key: key, chain: authority.certificate, trust: TrustBundle([authority.certificate]), clusterID: authority.clusterID)
    }

    func settings(_ i: Int, voters: Int = 3) -> RaftSettings {
        var s = RaftSettings(id: UInt64(i + 1), address: Endpoint(host: "127.0.0.1", port: base + UInt16(i)))
        s.bootstrap = (0..<voters).map { (UInt64($0 + 1), "127.0.0.1:\(base + UInt16($0))") }
        s.electionTimeout = 0.3
        s.heartbeat = 0.05
        s.snapshotThreshold = 16
        s.snapshotTrailing = 4
        return s
    }

    final class Roles: @unchecked Sendable {
        let status = Mutex<[Int: RaftStatus]>([:])
    }
    let roles = Roles()

    func start(_ i: Int, authority: CertificateAuthority? = nil, role: PKIRole = .coordinator, log: ClusterLog = .silent,
               configure: (inout RaftSettings) -> Void = { _ in }) throws -> RaftReplica {
        let data = dir.path + "/c\(i)"
        if !FS.exists(data) { try FS.makeDirectories(data, mode: 0o700) }
        let db = data + "/cluster.db"
        if !FS.exists(db) {
            var b = StoreBatch()
            b.meta = ["cluster_id": clusterID]
            try Store(path: db).commit(b)
        }
        let r = roles
        var s = settings(i)
        configure(&s)
        return try RaftReplica(settings: s, dataDir: data, databasePath: db, tls: try credentials(authority ?? ca, role: role), log: log) { s in
            r.status.withLock { $0[i] = s }
        }
    }

    func leader(_ replicas: [Int: RaftReplica], within seconds: Double = 10) -> Int? {
        let until = monotonicSeconds() + seconds
        while monotonicSeconds() < until {
            if let l = replicas.first(where: { $0.value.status.role == .leader })?.key { return l }
            usleep(20_000)
        }
        return nil
    }

    func services(_ i: Int) throws -> Set<String> {
        Set(try Store(path: dir.path + "/c\(i)/cluster.db").load().services.map(\.spec.name))
    }

    func batch(_ name: String) -> StoreBatch {
        var b = StoreBatch()
        b.services = [ServiceRecord(id: "id-" + name, spec: ServiceSpec(name: name, image: "busybox"), version: 1, created: 1, updated: 1)]
        return b
    }

    func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let until = monotonicSeconds() + seconds
        while monotonicSeconds() < until {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    @Test func replicatesFailsOverAndCatchesUp() throws {
        var replicas: [Int: RaftReplica] = [:]
        for i in 0..<3 { replicas[i] = try start(i) }
        defer { for r in replicas.values { r.stop() } }
        let l = try #require(leader(replicas), "no leader among three replicas")
        // A follower refuses to propose.
        let follower = (l + 1) % 3
        #expect(throws: ClusterError.self) { try replicas[follower]?.commit(batch("nope"), timeout: 2) }
        // Enough entries for snapshots (threshold 16).
        for n in 0..<40 { try replicas[l]?.commit(batch("s\(n)"), timeout: 5) }
        let all = Set((0..<40).map { "s\($0)" })
        #expect(eventually(15) { (0..<3).allSatisfy { (try? self.services($0)) == all } },
                "every store holds every batch: \((0..<3).map { (try? self.services($0).count) ?? -1 })")

        // The leader goes; another leads, with everything.
        replicas[l]?.stop()
        replicas[l] = nil
        let next = try #require(leader(replicas), "no new leader")
        #expect(next != l)
        try replicas[next]?.commit(batch("after"), timeout: 5)

        // The old leader wiped and back: it catches up from a snapshot and the log.
        try FS.removeTree(dir.path + "/c\(l)")
        replicas[l] = try start(l)
        #expect(eventually(10) { (try? self.services(l)) == all.union(["after"]) }, "the wiped replica did not catch up")
    }

    @Test func aForeignCoordinatorIsRefused() throws {
        var lines: [String] = []
        let captured = Mutex<[String]>([])
        let log = ClusterLog(component: "raft", level: .debug) { line in captured.withLock { $0.append(line) } }
        var replicas: [Int: RaftReplica] = [:]
        replicas[0] = try start(0, log: log)
        replicas[1] = try start(1, log: log)
        defer { for r in replicas.values { r.stop() } }
        // The third voter holds a certificate of another cluster's CA.
        let other = try CertificateAuthority.create(clusterID: "othercluster001", now: Timestamp.now().secondsSince1970)
        replicas[2] = try start(2, authority: other, log: log)
        let l = try #require(leader(replicas), "two of three replicas elect a leader")
        #expect(l != 2)
        try replicas[l]?.commit(batch("ours"), timeout: 5)
        #expect(eventually(5) { captured.withLock { $0.contains { $0.contains("raft: refused") } } })
        lines = captured.withLock { $0 }
        #expect(lines.contains { $0.contains("another cluster") || $0.contains("certificate") }, "\(lines.suffix(5))")
        #expect((try? services(2)) == [], "the foreign replica got nothing")
    }

    final class Captured: @unchecked Sendable {
        let lines = Mutex<[String]>([])
        func withLock<R>(_ body: (inout [String]) -> R) -> R { lines.withLock { body(&$0) } }
    }

    func capture() -> (ClusterLog, Captured) {
        let captured = Captured()
        return (ClusterLog(component: "raft", level: .debug) { line in captured.withLock { $0.append(line) } }, captured)
    }

    /// The leader cut off from the other two: its writes are refused (never
    /// committed), it steps down, the majority elects a leader and commits;
    /// after the heal it holds the majority's history and nothing of its own.
    @Test func aPartitionedLeaderStepsDownAndCatchesUpAfterTheHeal() throws {
        var replicas: [Int: RaftReplica] = [:]
        for i in 0..<3 { replicas[i] = try start(i) }
        defer { for r in replicas.values { r.stop() } }
        let l = try #require(leader(replicas), "no leader among three replicas")
        try replicas[l]?.commit(batch("before"), timeout: 5)

        replicas[l]?.isolate(true)
        usleep(400_000) // every connection of it noticed (each pump wakes within 200 ms)
        #expect(throws: ClusterError.self, "the minority commits nothing") { try replicas[l]?.commit(batch("minority"), timeout: 2) }
        #expect(eventually(5) { replicas[l]?.status.role != .leader }, "the cut-off leader did not step down")
        let majority = replicas.filter { $0.key != l }
        let m = try #require(leader(majority), "the majority elects no leader")
        try replicas[m]?.commit(batch("majority"), timeout: 5)
        #expect((try? services(l)) == ["before"], "the minority applied a write")

        replicas[l]?.isolate(false)
        #expect(eventually(10) { (0..<3).allSatisfy { (try? self.services($0)) == ["before", "majority"] } },
                "one history after the heal: \((0..<3).map { (try? self.services($0)) ?? [] })")
        // The healed one follows; the cluster still commits.
        let now = try #require(leader(replicas))
        try replicas[now]?.commit(batch("after"), timeout: 5)
        #expect(eventually(10) { (0..<3).allSatisfy { (try? self.services($0))?.contains("after") == true } })
    }

    /// A valid certificate of this cluster that is a node's, not a
    /// coordinator's: its Raft connections are refused and logged, and the
    /// two coordinators go on without it.
    @Test func aNodeCertificateCannotSpeakRaft() throws {
        let (log, captured) = capture()
        var replicas: [Int: RaftReplica] = [:]
        replicas[0] = try start(0, log: log)
        replicas[1] = try start(1, log: log)
        replicas[2] = try start(2, role: .node, log: log)
        defer { for r in replicas.values { r.stop() } }
        let l = try #require(leader(replicas), "two of three replicas elect a leader")
        #expect(l != 2)
        try replicas[l]?.commit(batch("ours"), timeout: 5)
        #expect(eventually(5) { captured.withLock { $0.contains { $0.contains("raft: refused") && $0.contains("is not a coordinator's") } } },
                "\(captured.withLock { $0.suffix(5) })")
        #expect((try? services(2)) == [], "the node's replica got nothing")
    }

    /// Few entries but many bytes: a snapshot all the same (the log bounded in bytes, not only in entries).
    @Test func snapshotsAfterEnoughBytes() throws {
        var replicas: [Int: RaftReplica] = [:]
        for i in 0..<3 {
            replicas[i] = try start(i) { s in
                s.snapshotThreshold = 1024
                s.snapshotBytes = 256 << 10
            }
        }
        defer { for r in replicas.values { r.stop() } }
        let l = try #require(leader(replicas))
        func snapshots() -> [String] {
            ((try? FS.list(dir.path + "/c\(l)/raft")) ?? []).filter { $0.hasPrefix("snapshot-") }
        }
        #expect(snapshots().isEmpty)
        for n in 0..<8 {
            var b = batch("big\(n)")
            b.services[0].spec.env = (0..<1000).map { "VARIABLE_\($0)=\(String(repeating: "x", count: 40))" }
            try replicas[l]?.commit(b, timeout: 5)
        }
        #expect(eventually(5) { !snapshots().isEmpty }, "no snapshot after 8 entries of ~50 kB with a 256 kB bound")
    }
}
