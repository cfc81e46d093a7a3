#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// `hako coordinator`: the core behind a mutual-TLS listener, on one
/// poll-driven thread. There is no plaintext port.
///
/// Sendable by confinement: everything but `stop()` runs on the loop's thread.
public final class Coordinator: @unchecked Sendable {
    public let config: CoordinatorConfig
    public let core: CoordinatorCore
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
        let pki = CoordinatorPKI(dataDir: config.dataDir)
        guard pki.exists, FS.exists(config.databasePath) else {
            throw ClusterError.config(key: "data_dir", reason: "\(config.dataDir) holds no cluster: run `hako cluster init --config FILE` first")
        }
        let store = try Store(path: config.databasePath)
        guard let clusterID = try store.load().meta["cluster_id"] else { throw ClusterError.store("the database has no cluster id") }
        try pki.recoverRotation()
        let ca = try pki.loadCA(clusterID: clusterID)
        let trust = try pki.loadTrust()
        core = try CoordinatorCore(config: config, store: store, ca: ca, trust: trust, clock: clock, random: random, log: log)
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
    }

    /// Serves until `stop()`.
    public func run() {
        log.info("cluster \(core.clusterID.prefix(12)) listening on \(Endpoint(host: config.listen.host, port: port)) (mutual TLS 1.3), \(config.clusterCIDR) split into /\(config.nodeSubnetPrefix)")
        loop.watch(listener.rawValue, events: Int16(POLLIN)) { [unowned self] _ in self.acceptAll() }
        scheduleTick()
        loop.after(10) { ResidentMemory.trimStartupCode() }
        loop.run()
        for (_, c) in connections { c.conn.close("coordinator stopping") }
        connections.removeAll()
        core.flush()
        log.info("stopped")
    }

    /// Thread-safe.
    public func stop() { loop.stop() }

    func scheduleTick() {
        let every = min(0.1, config.heartbeatPeriod / 4)
        loop.after(every) { [unowned self] in
            self.core.tick()
            self.deliver()
            self.scheduleTick()
        }
    }

    func acceptAll() {
        for _ in 0..<64 {
            guard let (fd, peer) = Sockets.accept(listener) else { return }
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
        switch core.authenticate(c.peerCertificate) {
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

    /// Messages are handled at once; their changes are committed together at
    /// the end of the poll round (group commit: one transaction for every
    /// report that arrived together), and only then are replies and
    /// assignments sent — the store holds a change before anyone hears of it.
    func received(_ env: Envelope, on c: LineConnection) {
        guard let peer = connections[c.id]?.peer, !closeAfterCommit.contains(c.id) else { return }
        if let reply = core.handle(env, from: peer, connection: c.id, address: c.peer) { held.append((c.id, reply)) }
        if peer == .anonymous {
            // Without a certificate a connection carries one join or one renewal
            // of an expired certificate: answered, then closed (refused or not;
            // what else arrives with it is not read).
            if env.type != MessageType.join && env.type != MessageType.renewExpired {
                log.warning("refused \(c.peer): \(env.type) without a client certificate")
            }
            closeAfterCommit.insert(c.id)
        }
        guard !commitScheduled else { return }
        commitScheduled = true
        loop.after(0) { [unowned self] in
            self.commitScheduled = false
            self.core.tick()
            for (id, line) in self.held { self.connections[id]?.conn.send(line) }
            self.held.removeAll()
            for id in self.closeAfterCommit { self.connections[id]?.conn.close("anonymous: one message answered") }
            self.closeAfterCommit.removeAll()
            self.deliver()
        }
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
            ResidentMemory.releaseFreeHeap()
            // The handshakes' and refusals' code (OpenSSL's, mostly) faulted in
            // 7–8 MB of the binary's pages; clean, they fault back in when needed.
            ResidentMemory.trimStartupCode()
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
            do {
                tls = try Coordinator.serverContext(pki: CoordinatorPKI(dataDir: config.dataDir), trust: core.trust)
                tlsGeneration = core.tlsGeneration
                log.info("TLS: trusting \(core.trust.roots.count) CA\(core.trust.roots.count == 1 ? "" : "s") for new connections")
            } catch {
                log.error("cannot rebuild the TLS context: \(error)")
            }
        }
        for o in core.takeOutgoing() {
            switch o {
            case .send(let id, let line): connections[id]?.conn.send(line)
            case .close(let id, let reason): connections[id]?.conn.close(reason)
            }
        }
    }
}
