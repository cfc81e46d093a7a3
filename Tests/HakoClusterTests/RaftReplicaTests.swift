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

    /// A coordinator removed from the configuration keeps running with its
    /// (still valid) coordinator certificate: once the removal is committed the
    /// others refuse its Raft connections — by Raft id and by its certificate,
    /// revoked — and log it; the two that remain commit without it. Then a
    /// coordinator joins under the removed one's Raft id with a certificate of
    /// its own (a machine wiped and joined again): it is accepted, caught up
    /// and made a voter, while the removed one is still refused.
    /// `body` on the leader among `replicas`, asked again of the next leader
    /// when the lead moves meanwhile (elections of 300 ms on a loaded machine).
    func onLeader(_ replicas: [Int: RaftReplica], _ body: (RaftReplica) throws -> Void) throws {
        var failure: (any Error)?
        for _ in 0..<5 {
            guard let l = leader(replicas), let r = replicas[l] else { continue }
            do { return try body(r) } catch {
                failure = error
                usleep(100_000)
            }
        }
        throw failure ?? ClusterError.network("no leader")
    }

    @Test func aRemovedCoordinatorIsRefusedAndAJoiningOneAccepted() throws {
        let (log, captured) = capture()
        var replicas: [Int: RaftReplica] = [:]
        for i in 0..<3 { replicas[i] = try start(i, log: log) }
        defer { for r in replicas.values { r.stop() } }
        // As `coordinator.add` records coordinators that joined: each one's certificate bound to its Raft id.
        for i in 0..<3 {
            let certificate = replicas[i]?.transport.credentials.certificate
            try onLeader(replicas) { try $0.commit(RaftReplica.memberBatch(id: UInt64(i + 1), clientAddress: "127.0.0.1:1\(i)", certificate: certificate), timeout: 5) }
        }
        try onLeader(replicas) { try $0.commit(batch("before"), timeout: 5) }
        #expect(eventually(10) { (0..<3).allSatisfy { (try? self.services($0)) == ["before"] } })

        // `coordinator rm` of a follower: the removal, then its record.
        let l = try #require(leader(replicas))
        let gone = (l + 1) % 3
        let goneID = UInt64(gone + 1)
        let oldCertificate = try #require(replicas[gone]?.transport.credentials.certificate)
        let others = replicas.filter { $0.key != gone }
        try onLeader(others) { try $0.change(.remove, id: goneID, address: "127.0.0.1:\(base + UInt16(gone))", timeout: 5) }
        try onLeader(others) { try $0.commit(RaftReplica.removalBatch(id: goneID), timeout: 5) }
        // Cut off from the leader, the removed one seeks votes and dials the others: refused, and said so.
        #expect(eventually(10) { captured.withLock { $0.contains { $0.contains("raft: refused") && $0.contains("raft id \(goneID)") } } },
                "\(captured.withLock { $0.suffix(8) })")
        #expect(captured.withLock { $0.contains { $0.contains("certificate \(oldCertificate.serial)") && $0.contains("revoked") } },
                "the removed coordinator's certificate is refused as revoked")
        let remaining = others
        try onLeader(remaining) { try $0.commit(batch("without"), timeout: 5) }
        #expect(eventually(5) { remaining.keys.allSatisfy { (try? self.services($0))?.contains("without") == true } })
        #expect((try? services(gone)) == ["before"], "the removed coordinator got what was committed after its removal")
        #expect(eventually(5) { remaining.values.allSatisfy { $0.removedIDs == [goneID] } })

        // A coordinator joins under the same Raft id, at another address, with its own certificate.
        replicas[3] = try start(3, log: log) { s in
            s.id = goneID
            s.bootstrap = []
        }
        let joining = try #require(replicas[3]?.transport.credentials.certificate)
        try onLeader(remaining) { try $0.commit(RaftReplica.memberBatch(id: goneID, clientAddress: "127.0.0.1:13", certificate: joining), timeout: 5) }
        try onLeader(remaining) { try $0.change(.addVoter, id: goneID, address: "127.0.0.1:\(base + 3)", timeout: 30) }
        let now = try #require(leader(replicas.filter { $0.key != gone }))
        #expect(eventually(2) { replicas[now]?.members[goneID] == "127.0.0.1:\(base + 3)" }, "\(replicas[now]?.members ?? [:])")
        #expect(eventually(10) { (try? self.services(3)) == ["before", "without"] }, "the joined coordinator did not catch up")
        #expect(eventually(5) { remaining.values.allSatisfy { $0.removedIDs.isEmpty } })
        // It votes: with it, the leader commits even when the other old member is gone.
        let other = try #require(remaining.keys.first { $0 != now })
        replicas[other]?.stop()
        replicas[other] = nil
        try onLeader(replicas.filter { $0.key != gone }) { try $0.commit(batch("joined"), timeout: 5) }
        #expect(eventually(10) { (try? self.services(3))?.contains("joined") == true })
        // The removed one, still running under that id, is still refused by its certificate.
        let refusedBefore = captured.withLock { $0.filter { $0.contains(oldCertificate.serial) }.count }
        #expect(eventually(10) { captured.withLock { $0.filter { $0.contains(oldCertificate.serial) }.count } > refusedBefore },
                "the removed coordinator's connections are no longer refused")
        #expect((try? services(gone))?.contains("joined") == false)
    }

    /// Coordinators of two hako versions in one cluster. The older one reads
    /// and writes entry format 1 only (the test holds for any format newer
    /// than it knows). While it leads, the newer ones apply what it writes.
    /// Once a newer one leads and writes its own format — the older one's
    /// statement wrongly says it reads it (a coordinator downgraded after it
    /// stated what it reads) — the older one refuses
    /// that entry — said in its log, its store left as it was before the entry,
    /// nothing after it applied — and the cluster goes on; upgraded (restarted
    /// reading every format), it applies the rest from its log and is whole.
    @Test func olderAndNewerCoordinatorsTogether() throws {
        try #require(StoreBatch.entryVersion > 1, "this hako writes no format newer than 1")
        let (log, captured) = capture()
        func older(_ s: inout RaftSettings) {
            s.entryFormat = 1
            s.newestEntryFormat = 1
        }
        var replicas: [Int: RaftReplica] = [:]
        // Entries, not snapshots, reach a coordinator that comes back (a snapshot is the database's image).
        func keepLog(_ s: inout RaftSettings) { s.snapshotThreshold = 1024 }
        // The older one's election timeout is the shortest: it leads first.
        replicas[0] = try start(0, log: log) { s in older(&s); keepLog(&s); s.electionTimeout = 0.1 }
        for i in 1..<3 { replicas[i] = try start(i, log: log) { s in keepLog(&s); s.electionTimeout = 1 } }
        defer { for r in replicas.values { r.stop() } }
        try #require(leader(replicas) == 0, "the older coordinator does not lead")
        try replicas[0]?.commit(batch("old1"), timeout: 5)
        try replicas[0]?.commit(batch("old2"), timeout: 5)
        #expect(eventually(10) { (0..<3).allSatisfy { (try? self.services($0)) == ["old1", "old2"] } },
                "the newer coordinators do not apply the older leader's entries: \((0..<3).map { (try? self.services($0)) ?? [] })")

        // A newer one leads and writes its own format.
        replicas[0]?.stop()
        replicas[0] = nil
        let newer = try #require(leader(replicas))
        for id in 1...3 {
            let claimed = CoordinatorReads(entryFormat: StoreBatch.entryVersion, schema: Store.schemaVersion)
            try replicas[newer]?.commit(RaftReplica.readsBatch(id: UInt64(id), reads: claimed), timeout: 5)
        }
        try replicas[newer]?.commit(batch("new1"), timeout: 5)
        #expect(replicas[newer]?.lastWrittenFormat == StoreBatch.entryVersion)
        replicas[0] = try start(0, log: log) { s in older(&s); keepLog(&s); s.electionTimeout = 1 }
        #expect(eventually(10) { captured.withLock { $0.contains { $0.contains("a log entry of format \(StoreBatch.entryVersion)") && $0.contains("upgrade this coordinator") } } },
                "\(captured.withLock { $0.suffix(8) })")
        try replicas[newer]?.commit(batch("new2"), timeout: 5)
        #expect(eventually(5) { (1..<3).allSatisfy { (try? self.services($0)) == ["old1", "old2", "new1", "new2"] } })
        usleep(300_000)
        #expect((try? services(0)) == ["old1", "old2"], "the older coordinator applied part of what it cannot read")

        // Upgraded: it reads every format, and catches up from its log.
        replicas[0]?.stop()
        replicas[0] = try start(0, log: log) { s in keepLog(&s); s.electionTimeout = 1 }
        #expect(eventually(10) { (try? self.services(0)) == ["old1", "old2", "new1", "new2"] }, "the upgraded coordinator did not catch up")
        let now = try #require(leader(replicas))
        try replicas[now]?.commit(batch("after"), timeout: 5)
        #expect(eventually(10) { (0..<3).allSatisfy { (try? self.services($0))?.contains("after") == true } })
    }

    /// A restart replays the log after the last snapshot onto a store that
    /// already has it: nothing may be applied twice (events would double).
    @Test func aRestartAppliesNothingTwice() throws {
        func alone(_ s: inout RaftSettings) {
            s.bootstrap = [(s.id, "127.0.0.1:\(s.address.port)")]
            s.snapshotThreshold = 1024
        }
        func events() throws -> [String] { self.events(0) }
        var replica = try start(0, configure: alone)
        defer { replica.stop() }
        try #require(leader([0: replica]) == 0)
        for n in 0..<5 { try replica.commit(withEvent("e\(n)"), timeout: 5) }
        #expect(try events() == ["e0", "e1", "e2", "e3", "e4"])
        for round in 0..<2 {
            replica.stop()
            replica = try start(0, configure: alone)
            try #require(leader([0: replica]) == 0, "round \(round): no leader after the restart")
            // Committed after everything before it is applied here.
            try replica.commit(withEvent("r\(round)"), timeout: 5)
        }
        #expect(try events() == ["e0", "e1", "e2", "e3", "e4", "r0", "r1"], "the restarts applied the log again")
        // A Raft directory made again (its log starts over) skips nothing of its own log.
        replica.stop()
        try FS.removeTree(dir.path + "/c0/raft")
        replica = try start(0, configure: alone)
        try #require(leader([0: replica]) == 0)
        try replica.commit(withEvent("fresh"), timeout: 5)
        #expect(try events().last == "fresh", "an entry of a new log at an index the old log had applied was skipped")
    }

    func withEvent(_ name: String) -> StoreBatch {
        var b = batch(name)
        b.events = [ClusterEvent(time: 1, kind: "service", action: "created", id: "id-" + name, name: name, message: "")]
        return b
    }

    func events(_ i: Int) -> [String] { (try? Store(path: dir.path + "/c\(i)/cluster.db").load().events.map(\.name)) ?? [] }

    /// Three replicas with no snapshot yet (libraft then replays its whole
    /// log at start, onto a store that holds it): a follower restarted, the
    /// leader sending what it missed meanwhile, and restarted again with
    /// nothing new, holds every event exactly once, in the leader's order.
    @Test func aRestartedFollowerHoldsEveryEventOnce() throws {
        func keepLog(_ s: inout RaftSettings) { s.snapshotThreshold = 1024 }
        let c = try Trio(self, configure: keepLog)
        defer { c.stop() }
        let f = c.follower
        try c.restartFollowerMissing(after: 20)
        #expect(eventually(10) { self.events(f) == c.expected }, "restarted: \(events(f))")
        c.replicas[f]?.stop()
        c.replicas[f] = try start(f, configure: keepLog)
        try c.commit("after")
        #expect(eventually(10) { self.events(f) == c.expected }, "restarted again: \(events(f))")
        #expect(events(c.leader) == c.expected)
    }

    /// Snapshots every 16 entries: a follower restarted (libraft restores
    /// its last snapshot over the store, whose mark is then the snapshot's,
    /// and replays the entries after it) holds every event exactly once, and
    /// so does a wiped one (the leader's snapshot, then the entries after it).
    @Test func aFollowerRestartedOrWipedAfterSnapshotsHoldsEveryEventOnce() throws {
        let c = try Trio(self)
        defer { c.stop() }
        let f = c.follower
        try c.restartFollowerMissing(after: 40)
        #expect(eventually(10) { self.events(f) == c.expected }, "restarted: \(events(f).suffix(12)) against \(c.expected.suffix(12))")
        // Wiped: the leader's snapshot, then the entries after it (the
        // leader had this follower at its last index already, and libraft's
        // progress then waits for the install timeout before it sends more:
        // 5 s and 1 ms per KiB of the snapshot here, 30 s by default).
        c.replicas[f]?.stop()
        try FS.removeTree(dir.path + "/c\(f)")
        c.replicas[f] = try start(f)
        try c.commit("wiped")
        #expect(eventually(15) { self.events(f) == c.expected }, "wiped: \(events(f).suffix(12)) against \(c.expected.suffix(12))")
    }

    /// Three replicas, their leader, one follower, and the events committed
    /// through the leader so far.
    final class Trio {
        let suite: RaftReplicaTests
        let configure: (inout RaftSettings) -> Void
        var replicas: [Int: RaftReplica] = [:]
        let leader: Int
        var expected: [String] = []
        var follower: Int { (leader + 1) % 3 }

        init(_ suite: RaftReplicaTests, configure: @escaping (inout RaftSettings) -> Void = { _ in }) throws {
            self.suite = suite
            self.configure = configure
            for i in 0..<3 { replicas[i] = try suite.start(i, configure: configure) }
            let l = suite.leader(replicas)
            if l == nil { for r in replicas.values { r.stop() } }
            leader = try #require(l)
        }

        func stop() { for r in replicas.values { r.stop() } }

        func commit(_ name: String) throws {
            try replicas[leader]?.commit(suite.withEvent(name), timeout: 5)
            expected.append(name)
        }

        /// `count` events the follower holds; then it is stopped while six
        /// more are committed, and started again (the caller waits for it).
        func restartFollowerMissing(after count: Int) throws {
            for n in 0..<count { try commit("e\(n)") }
            let f = follower
            #expect(suite.eventually(10) { self.suite.events(f) == self.expected })
            replicas[f]?.stop()
            replicas[f] = nil
            for n in 0..<6 { try commit("while\(n)") }
            replicas[f] = try suite.start(f, configure: configure)
        }
    }

    /// `--force-new-cluster` from a backup whose store was copied after its
    /// Raft log (the store holds entries the log does not): the old log is
    /// not applied again, and the new cluster's entries — at indices the old
    /// store had counted — are applied, not taken for the old ones.
    @Test func forceNewClusterAppliesNewEntriesPastAnOlderLog() throws {
        func alone(_ s: inout RaftSettings) {
            s.bootstrap = [(s.id, "127.0.0.1:\(s.address.port)")]
            s.snapshotThreshold = 1024
        }
        var replica = try start(0, configure: alone)
        defer { replica.stop() }
        try #require(leader([0: replica]) == 0)
        for name in ["a", "b"] { try replica.commit(withEvent(name), timeout: 5) }
        replica.stop()
        func copy(_ from: String, _ to: String) throws {
            try FS.makeDirectories(to, mode: 0o700)
            for f in try FS.list(from) { try FS.writeFile(to + "/" + f, try FS.readFile(from + "/" + f), mode: 0o600) }
        }
        let raftDir = dir.path + "/c0/raft"
        try copy(raftDir, dir.path + "/old-raft")
        replica = try start(0, configure: alone)
        try #require(leader([0: replica]) == 0)
        for name in ["c", "d"] { try replica.commit(withEvent(name), timeout: 5) }
        replica.stop()
        // The backup: the log as it was after "b", the store after "d".
        try FS.removeTree(raftDir)
        try copy(dir.path + "/old-raft", raftDir)
        replica = try start(0) { s in
            alone(&s)
            s.forceNewCluster = true
        }
        try #require(leader([0: replica]) == 0)
        try replica.commit(withEvent("new"), timeout: 5)
        #expect(events(0) == ["a", "b", "c", "d", "new"])
    }

    /// The leader writes the newest format every member reads. A coordinator
    /// that claims an older maximum (format 2, the test hook of an older hako)
    /// gets entries of format 2 and applies them; before anyone has stated
    /// what it reads, format 1. A fourth coordinator that reads format 3
    /// joins: still format 2. Once the older one is upgraded and says so, the
    /// format moves up to 3, and every coordinator applies it.
    @Test func theLeaderWritesTheNewestFormatEveryMemberReads() throws {
        try #require(StoreBatch.entryVersion >= 3, "this hako writes no format newer than 2")
        let (log, captured) = capture()
        func keepLog(_ s: inout RaftSettings) { s.snapshotThreshold = 1024 }
        func older(_ s: inout RaftSettings) {
            s.entryFormat = 2
            s.newestEntryFormat = 2
            keepLog(&s)
        }
        var replicas: [Int: RaftReplica] = [:]
        replicas[0] = try start(0, log: log) { older(&$0) }
        for i in 1..<3 { replicas[i] = try start(i, log: log) { keepLog(&$0) } }
        defer { for r in replicas.values { r.stop() } }
        try onLeader(replicas) { r in
            #expect(r.writeFormat == 1, "nobody has said what it reads: format 1, which every hako reads")
            try r.commit(batch("unstated"), timeout: 5)
            #expect(r.lastWrittenFormat == 1)
        }
        // Each states what it reads, through the leader (as a coordinator does at its start).
        for i in 0..<3 {
            let reads = try #require(replicas[i]?.ownReads)
            try onLeader(replicas) { try $0.commit(RaftReplica.readsBatch(id: UInt64(i + 1), reads: reads), timeout: 5) }
        }
        #expect(replicas[0]?.ownReads.entryFormat == 2 && replicas[1]?.ownReads.entryFormat == StoreBatch.entryVersion)
        #expect(eventually(5) { replicas.values.allSatisfy { $0.writeFormat == 2 || $0.settings.id == 1 } })
        try onLeader(replicas) { r in
            try r.commit(batch("two"), timeout: 5)
            #expect(r.lastWrittenFormat == 2, "the older coordinator reads no newer than 2")
        }
        #expect(eventually(10) { (0..<3).allSatisfy { (try? self.services($0)) == ["unstated", "two"] } },
                "\((0..<3).map { (try? self.services($0)) ?? [] })")
        #expect(!captured.withLock { $0.contains { $0.contains("upgrade this coordinator") } }, "the older coordinator met a format it does not read")

        // A coordinator that reads format 3 joins: the format stays 2.
        replicas[3] = try start(3, log: log) { s in
            s.bootstrap = []
            keepLog(&s)
        }
        let joining = try #require(replicas[3]?.ownReads)
        try onLeader(replicas.filter { $0.key < 3 }) { try $0.commit(RaftReplica.memberBatch(id: 4, clientAddress: "127.0.0.1:13", certificate: nil, reads: joining), timeout: 5) }
        try onLeader(replicas.filter { $0.key < 3 }) { try $0.change(.addVoter, id: 4, address: "127.0.0.1:\(base + 3)", timeout: 30) }
        try onLeader(replicas) { r in
            try r.commit(batch("joined"), timeout: 5)
            #expect(r.lastWrittenFormat == 2, "a joining coordinator raised the format before every member reads it")
        }
        #expect(eventually(10) { (0..<4).allSatisfy { (try? self.services($0))?.contains("joined") == true } })

        // The older one upgraded, and says so: format 3 from then on, applied everywhere.
        replicas[0]?.stop()
        replicas[0] = try start(0, log: log) { keepLog(&$0) }
        let upgraded = try #require(replicas[0]?.ownReads)
        try onLeader(replicas) { try $0.commit(RaftReplica.readsBatch(id: 1, reads: upgraded), timeout: 5) }
        #expect(eventually(5) { replicas.values.allSatisfy { $0.settings.id == 1 || $0.writeFormat == StoreBatch.entryVersion } })
        try onLeader(replicas) { r in
            try r.commit(batch("three"), timeout: 5)
            #expect(r.lastWrittenFormat == StoreBatch.entryVersion)
        }
        #expect(eventually(10) { (0..<4).allSatisfy { (try? self.services($0))?.contains("three") == true } },
                "\((0..<4).map { (try? self.services($0)) ?? [] })")
        #expect(captured.withLock { $0.contains { $0.contains("writing log entries of format \(StoreBatch.entryVersion)") } })
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

    /// A burst of large entries (one service updated 30 times, so the store
    /// stays small): each replica's in-memory log stays within the bytes
    /// since the last snapshot plus the trailing bytes kept behind it (and an
    /// entry or two under way), not `snapshotTrailing` entries of whatever
    /// size (128 here: every entry of the burst).
    @Test func aBurstOfLargeEntriesKeepsTheLogBounded() throws {
        let bound: UInt64 = 256 << 10
        var replicas: [Int: RaftReplica] = [:]
        for i in 0..<3 {
            replicas[i] = try start(i) { s in
                s.snapshotThreshold = 1024
                s.snapshotTrailing = 128
                s.snapshotBytes = bound
                s.snapshotTrailingBytes = bound
            }
        }
        defer { for r in replicas.values { r.stop() } }
        let l = try #require(leader(replicas))
        var entry = 0
        for n in 0..<30 {
            var b = batch("big")
            b.services[0].spec.env = (0..<1000).map { "VARIABLE_\($0)=\(String(repeating: "x", count: 40))\(n)" }
            b.meta["burst"] = String(n)
            entry = max(entry, try b.encodedEntry().count, try b.encodedEntry(format: 1).count)
            try replicas[l]?.commit(b, timeout: 5)
        }
        #expect(entry > 40_000, "an entry of \(entry) bytes")
        #expect(eventually(10) { (0..<3).allSatisfy { (try? Store(path: self.dir.path + "/c\($0)/cluster.db").loadMeta()["burst"]) == "29" } })
        let image = UInt64(try Store(path: dir.path + "/c\(l)/cluster.db").serialize().count)
        #expect(image < bound, "the store's image is \(image) bytes")
        let limit = 2 * bound + 2 * UInt64(entry)
        // (libraft's log is counted every 20 ms.)
        #expect(eventually(2) { (0..<3).allSatisfy { replicas[$0]?.logBytes ?? .max <= limit } },
                "log bytes \((0..<3).map { replicas[$0]?.logBytes ?? 0 }), bound \(limit), \(30 * entry) written")
        #expect((0..<3).allSatisfy { (replicas[$0]?.logBytes ?? 0) > 0 }, "no trailing entry kept")
    }
}
