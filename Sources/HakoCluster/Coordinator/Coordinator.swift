#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import Synchronization

/// `hako coordinator`: the core behind a mutual-TLS listener, on one
/// poll-driven thread. There is no plaintext port.
///
/// Sendable by confinement: everything but `stop()` runs on the loop's thread.
public final class Coordinator: @unchecked Sendable {
    public let config: CoordinatorConfig
    public private(set) var core: CoordinatorCore
    /// With several coordinators (`raft_*` settings): the replicated store.
    public private(set) var replica: RaftReplica?
    /// Only the leader schedules, watches heartbeats and writes; without Raft, always.
    public private(set) var leading = true {
        didSet { leadingNow.store(leading, ordering: .relaxed) }
    }
    /// `leading` for other threads (the rotation worker).
    let leadingNow = Atomic<Bool>(true)
    /// Set once `run` returns: the rotation worker ends.
    let stopped = Atomic<Bool>(false)
    /// With Raft: `pki/` following the CA the store holds (a replicated rotation).
    let caFollower: CAFollower
    let clock: any ClusterClock
    let random: any RandomNumberGenerator & Sendable
    let loop: PollLoop
    /// For the connections accepted from now on (rebuilt when the CA rotates).
    var tls: TLSContext
    var tlsGeneration = 0
    let listener: FileDescriptor
    let log: ClusterLog
    var connections: [Int: (conn: LineConnection, peer: PeerIdentity)] = [:]
    /// The 30 s limit of each connection without a certificate, cancelled when it closes.
    var anonymousTimers: [Int: Int] = [:]
    /// Highest number of connections since the last settling, and whether one is scheduled.
    var connectionPeak = 0
    var settling = false
    /// `core.commits` when the heap was last settled after commits, and
    /// whether a settling is scheduled.
    var commitsSettled = 0
    var commitSettling = false
    var nextConnection = 1
    var commitScheduled = false
    /// Replies waiting for the round's commit.
    var held: [(Int, [UInt8])] = []
    var closeAfterCommit: Set<Int> = []
    public static let maxConnections = 4096
    static let anonymousTimeout = 30.0
    /// The port actually bound (":0" picks one).
    public let port: UInt16
    var metricsServer: MetricsServer?

    public init(config: CoordinatorConfig, log: ClusterLog, clock: any ClusterClock = SystemClusterClock(),
                random: any RandomNumberGenerator & Sendable = KernelRandom()) throws {
        self.config = config
        self.log = log
        self.clock = clock
        self.random = random
        let pki = CoordinatorPKI(dataDir: config.dataDir)
        guard pki.exists, FS.exists(config.databasePath) else {
            throw ClusterError.config(key: "data_dir", reason: "\(config.dataDir) holds no cluster: run `hako cluster init --config FILE` first")
        }
        let store = try Store(path: config.databasePath)
        guard let clusterID = try store.load().meta["cluster_id"] else { throw ClusterError.store("the database has no cluster id") }
        try pki.recoverRotation()
        let box = try SecretBox.loadOrCreate(dataDir: config.dataDir)
        caFollower = CAFollower(config: config, box: box, clusterID: clusterID, log: log)
        // With Raft the store says which CA is the cluster's (a rotation applied while this one was stopped).
        if config.raft != nil { _ = caFollower.follow(try store.loadMeta()) }
        let ca = try pki.loadCA(clusterID: clusterID)
        let trust = try pki.loadTrust()
        core = try CoordinatorCore(config: config, store: store, ca: ca, trust: trust, clock: clock, random: random, log: log)
        core.secretBox = box
        let (cert, key) = try pki.loadServer()
        // The coordinator's own certificate renews itself a month before it expires.
        let now = clock.wall()
        // (Not while the CA rotates: nodes not yet told of the new root could not reach it.)
        if cert.notAfter - now < 30 * 86400, core.rotation == nil {
            let renewed = try ClusterInit.issueServer(ca: ca, key: key, config: config, now: now)
            try writePublic(pki.serverCert, try renewed.pem())
            core.state.put(CertRecord(serial: renewed.serial, subject: "coordinator", role: PKIRole.coordinator.rawValue, notAfter: renewed.notAfter, revoked: false))
            log.info("renewed the coordinator's certificate until \(Timestamp(seconds: Int64(renewed.notAfter)).rfc3339)")
        }
        tls = try Coordinator.serverContext(pki: pki, trust: core.trust)
        tlsGeneration = core.tlsGeneration
        listener = try Sockets.listen(config.listen)
        port = Sockets.localPort(listener)
        loop = try PollLoop()
        try startMetrics()
        if var raft = config.raft {
            leading = false
            // (Observers do not run in an initializer.)
            leadingNow.store(false, ordering: .relaxed)
            // A coordinator that joined waits to be added; it never starts a cluster of its own.
            if FS.exists(CoordinatorJoin.markerPath(config.dataDir)) { raft.bootstrap = [] }
            guard let chain = core.trust.issuer(of: cert) ?? core.trust.signing else { throw ClusterError.security("no trusted CA") }
            let creds = RaftTransport.Credentials(certificate: cert, key: key, chain: chain, trust: core.trust, clusterID: clusterID)
            replica = try RaftReplica(settings: raft, dataDir: config.dataDir, databasePath: config.databasePath, tls: creds, log: log,
                                      caChanged: { [caFollower, loop] meta in
                                          if caFollower.follow(meta) { loop.post { [weak self] in self?.reloadIdentity() } }
                                      }) { [loop] status in loop.post { [weak self] in self?.raftChanged(status) } }
            core.raftID = raft.id
            if let replica { core.voters = { Set(replica.members.keys) } }
        }
    }

    /// The address clients reach this coordinator at.
    public var clientAddress: String {
        let wildcard = config.listen.host == "0.0.0.0" || config.listen.host == "::"
        let host = wildcard ? (config.advertise.first ?? config.raft?.address.host ?? "127.0.0.1") : config.listen.host
        return Endpoint(host: host, port: port).description
    }

    /// What a new leader adds before every node's grace period starts. A
    /// leader change makes a healthy node silent only for as long as its
    /// agent takes to reach the new leader once it leads: the agent asks
    /// every coordinator at once (`Agent.connect`), a dead one's black hole
    /// holding up no other, and asks again at most `Agent.leaderReachBound`
    /// apart (backoff ≤ 1.2 s, plus a handshake and the hello). With the
    /// default grace period (3 s) that fits inside it, so none is added and
    /// a lost node is down one grace period after the election, not two
    /// (issue 14: a Pi lost with the leader, p99 ≤ 6 s). A grace period
    /// shorter than the bound gets the difference, so a leader change never
    /// declares a healthy node down.
    static func leadershipAllowance(downAfter: Double) -> Double { max(0, Agent.leaderReachBound - downAfter) }

    var commitTimeout: Double { max(2, (config.raft?.electionTimeout ?? 1) * 3) }

    /// Raft changed role or leader: take the lead (load the store, every
    /// node's grace period afresh) or give it up (stop scheduling, let the
    /// peers go to the leader).
    func raftChanged(_ status: RaftStatus) {
        guard let replica else { return }
        if status.role == .leader, !leading {
            do {
                // Committed once everything before it is applied here: the store is then current.
                var b = StoreBatch()
                b.meta[RaftReplica.addressKeyPrefix + String(replica.settings.id)] = clientAddress
                b.meta[CoordinatorReads.metaKey(replica.settings.id)] = replica.ownReads.encoded
                try replica.commit(b, timeout: commitTimeout)
                let store = try Store(path: config.databasePath)
                let stored = try store.load()
                if stored.meta[RaftReplica.seededKey] == nil {
                    // The store as `cluster init` made it, into the log once in the cluster's life.
                    var seed = stored.seedBatch
                    seed.meta[RaftReplica.seededKey] = "1"
                    try replica.commit(seed, timeout: commitTimeout)
                    log.info("the store is in the Raft log (\(stored.nodes.count) nodes, \(stored.services.count) services, \(stored.tasks.count) tasks)")
                }
                let pki = CoordinatorPKI(dataDir: config.dataDir)
                let ca = try pki.loadCA(clusterID: core.clusterID)
                let fresh = try CoordinatorCore(config: config, store: store, ca: ca, trust: try pki.loadTrust(),
                                                clock: clock, random: random, log: log,
                                                allowance: Coordinator.leadershipAllowance(downAfter: config.downAfter))
                fresh.secretBox = core.secretBox
                fresh.replicate = { [replica, commitTimeout] batch in try replica.commit(batch, timeout: commitTimeout) }
                fresh.replicationFailed = { [unowned self] in self.dropLead() }
                fresh.raftID = replica.settings.id
                fresh.voters = { Set(replica.members.keys) }
                fresh.settleOwnRotation()
                core = fresh
                // Loading the store was a burst too: settled once the commits stop.
                commitsSettled = -1
                leading = true
                dropConnections("the leader changed")
                log.info("leading (term \(status.term)): \(core.state.nodes.count) nodes, \(core.state.services.count) services, \(core.state.tasks.count) tasks")
            } catch {
                log.warning("elected, but cannot take the lead: \(error)")
            }
        } else if status.role != .leader, leading {
            leading = false
            dropConnections("this coordinator no longer leads")
            log.info("following (term \(status.term)): \(leaderDescription(status))")
        } else {
            log.debug("raft: \(status.role) term \(status.term), \(leaderDescription(status))")
        }
    }

    /// A commit failed: what this core holds in memory is not the cluster's.
    /// It stops leading at once; if Raft still says it leads, it takes the
    /// lead again from the store (without the change that was not committed).
    func dropLead() {
        guard leading else { return }
        leading = false
        dropConnections("a change could not be committed")
        loop.after(0.2) { [weak self] in
            guard let self, let s = self.replica?.status else { return }
            self.raftChanged(s)
        }
    }

    func leaderDescription(_ s: RaftStatus) -> String {
        s.leaderID == 0 ? "no leader" : "the leader is \(replica?.clientAddresses[s.leaderID] ?? s.leaderRaftAddress)"
    }

    func dropConnections(_ reason: String) {
        for (_, c) in connections { c.conn.close(reason) }
    }

    /// Who leads and every coordinator's address.
    func coordinatorsReply() -> CoordinatorsReply {
        guard let replica else {
            return CoordinatorsReply(leader: clientAddress, address: clientAddress, members: [.init(id: 0, address: clientAddress, raftAddress: "")])
        }
        let s = replica.status
        let book = replica.clientAddresses
        let me = replica.settings.id
        let leader: String? = leading ? clientAddress : (s.leaderID == 0 ? nil : book[s.leaderID])
        let own = clientAddress
        var members: [CoordinatorsReply.Member] = []
        for (id, raftAddress) in replica.members.sorted(by: { $0.key < $1.key }) {
            let address: String = id == me ? own : (book[id] ?? guessClientAddress(raftAddress: raftAddress))
            members.append(CoordinatorsReply.Member(id: id, address: address, raftAddress: raftAddress))
        }
        return CoordinatorsReply(leader: leader, address: clientAddress,
                                 members: members.isEmpty ? [.init(id: me, address: clientAddress, raftAddress: replica.settings.address.description)] : members,
                                 id: me, leaderID: leading ? me : (s.leaderID == me ? 0 : s.leaderID))
    }

    /// The client address of a coordinator that never led nor joined (it has
    /// not told its client port): beside its Raft address, at this one's
    /// client port — coordinators share a configuration — or, on this
    /// coordinator's own host (several on one machine, `raft_peers`), the
    /// client port as far from this one's as its Raft port is from this one's.
    func guessClientAddress(raftAddress: String) -> String {
        guard let theirs = try? Endpoint(parsing: raftAddress) else { return "" }
        guard let mine = config.raft?.address, theirs.host == mine.host else { return Endpoint(host: theirs.host, port: port).description }
        let guess = Int(port) + Int(theirs.port) - Int(mine.port)
        return (1...65535).contains(guess) ? Endpoint(host: theirs.host, port: UInt16(guess)).description : ""
    }

    /// A coordinator that joined (its certificate from `coordinator.join`),
    /// over mutual TLS: `coordinator.secrets` gives it the CA and the voters,
    /// `coordinator.add` (once its Raft runs) makes it a voter; the answer
    /// comes when Raft has caught it up and committed the change.
    func joiningCoordinator(_ env: Envelope, on c: LineConnection) {
        guard let id = env.id else { return }
        do {
            guard let replica else { throw ClusterError.conflict("this coordinator runs without Raft (set raft_address in its configuration)") }
            switch env.type {
            case MessageType.coordinatorSecrets:
                let pki = CoordinatorPKI(dataDir: config.dataDir)
                var secrets = CoordinatorSecrets(caCertificate: try FS.readString(pki.caCert), caKey: try FS.readString(pki.caKey),
                                                 trust: try core.trust.pem(), members: coordinatorsReply().members)
                secrets.secretsKey = core.secretBox?.exported
                log.info("coordinator \(c.peer) received the CA and the secrets key")
                c.send(WireEncoder.reply(to: id, secrets))
            case MessageType.coordinatorAdd:
                let r = try env.body(CoordinatorAddRequest.self)
                guard r.raftID > 0, (try? Endpoint(parsing: r.raftAddress)) != nil, (try? Endpoint(parsing: r.address)) != nil else {
                    throw ClusterError.invalid("a coordinator needs a Raft id above 0 and two HOST:PORT addresses")
                }
                let members = replica.members
                if let taken = members[r.raftID], taken != r.raftAddress { throw ClusterError.conflict("raft id \(r.raftID) is taken by \(taken)") }
                if (members.count + 1) % 2 == 0 {
                    log.warning("\(members.count + 1) coordinators tolerate no more failures than \(members.count) (\((members.count - 1) / 2)): add one more")
                }
                // Recorded before Raft adds it: its certificate bound to its Raft
                // id, and a coordinator removed before under that id no longer
                // refused on the Raft port (it must reach the leader to catch up).
                try commitMembership(RaftReplica.memberBatch(id: r.raftID, clientAddress: r.address, certificate: c.peerCertificate,
                                                             reads: r.reads.flatMap(CoordinatorReads.decode)))
                let conn = c.id
                replica.changeAsync(.addVoter, id: r.raftID, address: r.raftAddress, timeout: 60) { [weak self] error in
                    self?.loop.post { [weak self] in
                        guard let self else { return }
                        guard error == nil else {
                            self.connections[conn]?.conn.send(WireEncoder.error(to: id, WireError(error ?? ClusterError.network("?"))))
                            return
                        }
                        self.log.info("coordinator \(r.address) (raft id \(r.raftID)) is a voter: \(members.count + 1) coordinators")
                        self.connections[conn]?.conn.send(WireEncoder.reply(to: id, EmptyBody()))
                    }
                }
            case MessageType.coordinatorReads:
                let r = try env.body(CoordinatorReadsStatement.self)
                guard let reads = CoordinatorReads.decode(r.reads) else { throw ClusterError.invalid("\"\(r.reads)\": expected FORMAT SCHEMA") }
                guard r.raftID > 0, !replica.removedIDs.contains(r.raftID) else { throw ClusterError.notFound("raft id \(r.raftID) is not a coordinator of this cluster") }
                try commitMembership(RaftReplica.readsBatch(id: r.raftID, reads: reads))
                log.info("coordinator \(r.raftID) reads log entries up to format \(reads.entryFormat) and schema \(reads.schema): writing format \(replica.writeFormat)")
                if reads.schema < Store.schemaVersion {
                    log.warning("coordinator \(r.raftID) reads database schema up to \(reads.schema), this store's is \(Store.schemaVersion): a snapshot sent to it is refused until it is upgraded")
                }
                c.send(WireEncoder.reply(to: id, EmptyBody()))
            default:
                throw WireError(.unauthorized, "\(env.type): not a message between coordinators")
            }
        } catch {
            c.send(WireEncoder.error(to: id, WireError(error)))
        }
    }

    /// `coordinator rm|demote` (the admin, on the leader): a membership change through Raft.
    func changeMembership(_ env: Envelope, on c: LineConnection) {
        guard let id = env.id else { return }
        do {
            guard let replica, leading else { throw ClusterError.invalid("this coordinator does not lead") }
            let ref = try env.body(CoordinatorRef.self).coordinator
            let members = coordinatorsReply().members
            let removing = env.type == MessageType.coordinatorRemove
            guard let m = members.first(where: { String($0.id) == ref || $0.address == ref || $0.raftAddress == ref }) else {
                // Out of the configuration already, its removal not recorded (the
                // leader changed in between): recorded now, so it is refused.
                if removing, let gone = replica.clientAddresses.first(where: { (String($0.key) == ref || $0.value == ref) && replica.members[$0.key] == nil }) {
                    try commitMembership(RaftReplica.removalBatch(id: gone.key))
                    log.info("coordinator \(gone.value) (raft id \(gone.key)) was no longer a voter: its removal is recorded, its Raft connections refused")
                    c.send(WireEncoder.reply(to: id, EmptyBody()))
                    return
                }
                throw ClusterError.notFound("no coordinator \(ref) (hako cluster coordinator ls)")
            }
            guard members.count > 1 else { throw ClusterError.conflict("\(ref) is the only coordinator") }
            if m.id == replica.settings.id {
                throw ClusterError.conflict("\(ref) leads: stop it (another takes the lead), then remove it from the new leader")
            }
            try replica.change(removing ? .remove : .demote, id: m.id, address: m.raftAddress, timeout: commitTimeout)
            if removing {
                // Once the removal is committed (never before: a removal lost
                // with its leader must refuse no one), its Raft id and bound
                // certificate are refused everywhere this entry is applied.
                try commitMembership(RaftReplica.removalBatch(id: m.id))
                core.coordinatorRemoved(m.id)
            }
            let name = m.address.isEmpty ? m.raftAddress : m.address
            core.record(ClusterEvent(time: clock.wall(), kind: "coordinator", action: removing ? "removed" : "demoted", id: String(m.id), name: name,
                                     message: removing ? "raft id and certificate refused on the Raft port" : "no longer a voter"))
            log.info("coordinator \(name) (raft id \(m.id)) \(removing ? "removed: its Raft connections are refused from now on" : "demoted")")
            c.send(WireEncoder.reply(to: id, EmptyBody()))
        } catch {
            c.send(WireEncoder.error(to: id, WireError(error)))
        }
    }

    /// Commits a membership record through Raft now (not with the round's
    /// batch: the change that follows depends on it) and mirrors it in the
    /// core's memory: meta, certificates bound and revoked.
    func commitMembership(_ b: StoreBatch) throws(ClusterError) {
        guard let replica else { throw .conflict("this coordinator runs without Raft") }
        try replica.commit(b, timeout: commitTimeout)
        core.state.meta.merge(b.meta) { $1 }
        for c in b.certs { core.state.certs[c.serial] = c }
        for subject in b.revokedSubjects {
            for (serial, c) in core.state.certs where c.subject == subject { core.state.certs[serial]?.revoked = true }
        }
    }

    /// Serves until `stop()`.
    public func run() {
        log.info("cluster \(core.clusterID.prefix(12)) listening on \(Endpoint(host: config.listen.host, port: port)) (mutual TLS 1.3), \(config.clusterCIDR) split into /\(config.nodeSubnetPrefix)")
        loop.watch(listener.rawValue, events: Int16(POLLIN)) { [unowned self] _ in self.acceptAll() }
        scheduleTick()
        loop.after(10) { ResidentMemory.trimStartupCode() }
        if replica != nil { _ = Threads.detach { [self] in self.followerWorker() } }
        loop.run()
        stopped.store(true, ordering: .relaxed)
        for (_, c) in connections { c.conn.close("coordinator stopping") }
        connections.removeAll()
        if leading { core.flush() }
        replica?.stop()
        log.info("stopped")
    }

    /// Thread-safe.
    public func stop() { loop.stop() }

    func scheduleTick() {
        let every = min(0.1, config.heartbeatPeriod / 4)
        loop.after(every) { [unowned self] in
            if self.leading { self.commitAndDeliver() }
            self.scheduleTick()
        }
    }

    func acceptAll() {
        for _ in 0..<64 {
            guard let (fd, peer) = Sockets.acceptPeer(listener) else { return }
            if connections.count >= Coordinator.maxConnections {
                log.warning("refused \(peer): too many connections")
                fd.close()
                continue
            }
            let id = nextConnection
            nextConnection += 1
            do {
                let c = try LineConnection(id: id, fd: fd, peer: peer, context: tls, server: true, loop: loop, limits: config.limits)
                c.onOpen = { [unowned self] c in self.opened(c) }
                c.onMessage = { [unowned self] c, env in self.received(env, on: c) }
                c.onClose = { [unowned self] c, reason in self.closed(c, reason) }
                connections[id] = (c, .anonymous)
                connectionPeak = max(connectionPeak, connections.count)
                c.start()
            } catch {
                log.warning("refused \(peer): \(error)")
            }
        }
    }

    func opened(_ c: LineConnection) -> Bool {
        switch leading ? core.authenticate(c.peerCertificate) : followerAuthenticate(c.peerCertificate) {
        case .success(let peer):
            connections[c.id]?.peer = peer
            log.debug("connection \(c.id) from \(c.peer): \(peer)")
            if peer == .anonymous {
                // Without a certificate a peer may join, and only briefly.
                let id = c.id
                anonymousTimers[id] = loop.after(Coordinator.anonymousTimeout) { [weak self] in
                    guard let self else { return }
                    self.anonymousTimers[id] = nil
                    guard let entry = self.connections[id], entry.peer == .anonymous else { return }
                    entry.conn.close("no join within \(Int(Coordinator.anonymousTimeout)) s")
                }
            }
            return true
        case .failure(let why):
            log.warning("refused \(c.peer): \(why)")
            c.sendError(to: nil, WireError(.unauthorized, why.description))
            c.context["refused"] = "1"
            c.close("refused: \(why)")
            return false
        }
    }

    /// A follower's state in memory is the one it started with: it checks
    /// only that the certificate is this cluster's (the handshake verified it
    /// against the CA) and its role. It changes nothing and answers with the
    /// leader's address only; the leader checks serials and revocation.
    func followerAuthenticate(_ cert: Certificate?) -> Result<PeerIdentity, ClusterError> {
        guard let cert else { return .success(.anonymous) }
        guard cert.organization == "hako-cluster-\(core.clusterID)" else { return .failure(.security("certificate of another cluster")) }
        switch cert.role {
        case PKIRole.admin.rawValue: return .success(.admin)
        case PKIRole.node.rawValue: return .success(.node(cert.commonName))
        case PKIRole.coordinator.rawValue: return .success(.coordinator)
        default: return .failure(.security("certificate role \(cert.role) cannot connect"))
        }
    }

    /// Messages are handled at once; their changes are committed together at
    /// the end of the poll round (group commit: one transaction for every
    /// report that arrived together), and only then are replies and
    /// assignments sent — the store holds a change before anyone hears of it.
    func received(_ env: Envelope, on c: LineConnection) {
        guard let peer = connections[c.id]?.peer, !closeAfterCommit.contains(c.id) else { return }
        if env.type == MessageType.coordinators, peer != .anonymous {
            if let id = env.id { c.send(WireEncoder.reply(to: id, coordinatorsReply())) }
            return
        }
        if env.type == MessageType.coordinatorRemove || env.type == MessageType.coordinatorDemote, peer == .admin, leading {
            changeMembership(env, on: c)
            return
        }
        guard leading else {
            // A follower answers, changes nothing, and names the leader.
            let r = coordinatorsReply()
            let why = r.leader.map { "not the leader: the leader is \($0)" }
                ?? "no quorum: no leader among \(r.coordinators.count) coordinator\(r.coordinators.count == 1 ? "" : "s")"
            if env.id != nil { c.send(WireEncoder.error(to: env.id, WireError(.notLeader, why))) }
            return
        }
        if peer == .coordinator, env.type != MessageType.coordinatorRotation {
            joiningCoordinator(env, on: c)
            return
        }
        if let reply = core.handle(env, from: peer, connection: c.id, address: c.peer) { held.append((c.id, reply)) }
        if peer == .anonymous {
            // Without a certificate a connection carries one join or one renewal
            // of an expired certificate: answered, then closed (refused or not;
            // what else arrives with it is not read).
            if env.type != MessageType.join && env.type != MessageType.renewExpired && env.type != MessageType.coordinatorJoin {
                log.warning("refused \(c.peer): \(env.type) without a client certificate")
            }
            closeAfterCommit.insert(c.id)
        }
        guard !commitScheduled else { return }
        commitScheduled = true
        loop.after(0) { [unowned self] in
            self.commitScheduled = false
            self.commitAndDeliver()
        }
    }

    /// One tick of the core (which commits), then the replies it committed,
    /// then what the tick itself asked for. Replies go first whichever tick
    /// commits them — the periodic one may run before the one a request
    /// scheduled: a node's renewed certificate must reach it before the
    /// `ca.update` that ends the rotation its renewal completed.
    func commitAndDeliver() {
        core.tick()
        if core.commits != commitsSettled { settleAfterCommits() }
        for (id, line) in held { connections[id]?.conn.send(line) }
        held.removeAll()
        for id in closeAfterCommit { connections[id]?.conn.close("anonymous: one message answered") }
        closeAfterCommit.removeAll()
        deliver()
    }

    func closed(_ c: LineConnection, _ reason: String) {
        guard let entry = connections.removeValue(forKey: c.id) else { return }
        if let t = anonymousTimers.removeValue(forKey: c.id) { loop.cancel(t) }
        core.connectionClosed(c.id, peer: entry.peer)
        settleAfterBurst()
        switch entry.peer {
        case .node(let n):
            log.info("node \(core.state.nodes[n]?.name ?? n) disconnected: \(reason)")
        default:
            if reason.hasPrefix("TLS") || reason.contains("certificate") || reason.contains("malformed") {
                log.warning("refused \(c.peer): \(reason)")
            } else {
                log.debug("connection \(c.id) from \(c.peer) closed: \(reason)")
            }
        }
    }

    /// A burst of connections (clients, or hostile peers: handshakes that
    /// fail, joins refused) leaves its TLS state freed inside the heap, the
    /// tables at their peak size and the code it ran resident: after 600
    /// hostile connections RSS went from 7.0 to 19.6 MB (5 MB heap, 8 MB of
    /// the binary's pages) and stayed.
    /// Once the connections have fallen back to a quarter of their peak and
    /// stayed there for 5 s, the tables are rebuilt at their present size and
    /// the heap's free pages go back to the kernel.
    func settleAfterBurst() {
        guard !settling, connectionPeak >= 16, connections.count * 4 <= connectionPeak else { return }
        settling = true
        loop.after(5) { [weak self] in
            guard let self else { return }
            self.settling = false
            guard self.connections.count * 4 <= self.connectionPeak else { return }
            self.connections = Dictionary(uniqueKeysWithValues: self.connections.map { ($0.key, $0.value) })
            self.anonymousTimers = Dictionary(uniqueKeysWithValues: self.anonymousTimers.map { ($0.key, $0.value) })
            self.loop.compact()
            self.core.compact()
            self.connectionPeak = self.connections.count
            // The handshakes' and refusals' code (OpenSSL's, mostly) faulted in
            // 7–8 MB of the binary's pages; clean, they fault back in when needed.
            ResidentMemory.release()
        }
    }

    /// A burst of commits (1,000 tasks placed: the batches, their Raft
    /// entries, the replies) leaves the heap at its peak — the leader's
    /// `VmHWM` was 40 MB after placing 1,000 tasks and its RSS stayed near
    /// 30 MB — and nothing gave it back but a burst of connections. Once no
    /// batch has been committed for 5 s, the free heap (every arena: the
    /// Raft and transport threads' too) and the code the burst ran go back
    /// to the kernel. One check per 5 s while commits go on, none per commit;
    /// a new leader's core (its store loaded) is settled the same way.
    func settleAfterCommits() {
        guard !commitSettling else { return }
        commitSettling = true
        let seen = core.commits
        loop.after(5) { [weak self] in
            guard let self else { return }
            self.commitSettling = false
            // Still committing: looked at again 5 s later.
            guard self.core.commits == seen else { return self.settleAfterCommits() }
            self.commitsSettled = seen
            self.core.releaseStoreCache()
            ResidentMemory.release()
        }
    }

    /// The listener's context: the coordinator's certificate with the root
    /// that signed it, every root of `trust` accepted from clients.
    static func serverContext(pki: CoordinatorPKI, trust: TrustBundle) throws(ClusterError) -> TLSContext {
        let (cert, key) = try pki.loadServer()
        guard let chain = trust.issuer(of: cert) ?? trust.signing else { throw .security("no trusted CA") }
        return try TLSContext.server(certificate: cert, key: key, chain: chain, trust: trust)
    }

    /// Carries out what the core asked for.
    func deliver() {
        if core.tlsGeneration != tlsGeneration {
            // Connections open now keep their session; new ones get the new context.
            tlsGeneration = core.tlsGeneration
            reloadIdentity()
        }
        for o in core.takeOutgoing() {
            switch o {
            case .send(let id, let line): connections[id]?.conn.send(line)
            case .close(let id, let reason): connections[id]?.conn.close(reason)
            }
        }
    }
}
