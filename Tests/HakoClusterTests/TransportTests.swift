import HakoImage
import Foundation
@testable import HakoCluster
import HakoRuntime
import HakoSystem
@testable import HakoTransport
import Synchronization
import Testing

/// A real coordinator on loopback, in a thread of the test process.
final class LiveCoordinator: @unchecked Sendable {
    let dir = TempDir("live")
    let clock: any ClusterClock
    let coordinator: Coordinator
    final class Lines: @unchecked Sendable {
        let m = Mutex<[String]>([])
    }
    let logs = Lines()
    let done = DispatchSemaphore(value: 0)
    var config = CoordinatorConfig()

    init(clock: any ClusterClock = ManualClock(), configure: (inout CoordinatorConfig) -> Void = { _ in }) throws {
        self.clock = clock
        config.dataDir = dir.path + "/coord"
        config.listen = Endpoint(host: "127.0.0.1", port: 0)
        config.limits.maxMalformed = 3
        config.limits.maxLine = 8192
        configure(&config)
        _ = try ClusterInit.run(config, adminDir: dir.path + "/admin", now: clock.wall())
        let sink = logs
        let log = ClusterLog(component: "test", level: .debug, sink: { line in sink.m.withLock { $0.append(line) } })
        coordinator = try Coordinator(config: config, log: log, clock: clock, random: SeededRandom(seed: 3))
        let c = coordinator
        let d = done
        Thread { c.run(); d.signal() }.start()
    }

    deinit {
        coordinator.stop()
        _ = done.wait(timeout: .now() + 10)
    }

    var address: String { "127.0.0.1:\(coordinator.port)" }
    var admin: AdminCredentials { AdminCredentials(dir: dir.path + "/admin") }
    var ca: CertificateAuthority {
        get throws { try CoordinatorPKI(dataDir: config.dataDir).loadCA(clusterID: coordinator.core.clusterID) }
    }

    func adminClient() throws -> ClusterClient { try ClusterClient.admin(admin, address: address) }

    func token(ttl: Double? = nil) throws -> String {
        try adminClient().request(MessageType.tokenCreate, TokenCreateRequest(ttl: ttl), as: TokenReply.self).token
    }

    func logged(_ fragment: String) -> Bool {
        let deadline = monotonicSeconds() + 5
        while monotonicSeconds() < deadline {
            if logs.m.withLock({ $0.contains { $0.contains(fragment) } }) { return true }
            usleep(10_000)
        }
        return false
    }

    /// A client holding `cert`/`key`, trusting the cluster CA.
    func client(cert: Certificate?, key: PrivateKey?) throws -> ClusterClient {
        let tls = try TLSContext.client(certificate: cert, key: key, trust: try ca.certificate)
        return try ClusterClient.connect(try Endpoint(parsing: address), tls: tls, timeout: 5)
    }

    /// Whether a request over a fresh connection with these credentials is refused.
    func refused(cert: Certificate?, key: PrivateKey?) -> String? {
        do {
            let c = try client(cert: cert, key: key)
            _ = try c.request(MessageType.nodeList, EmptyBody(), as: NodeList.self, timeout: 5)
            return nil
        } catch {
            return "\(error)"
        }
    }

    func agentConfig(_ name: String) -> AgentConfig {
        var a = AgentConfig()
        a.stateDir = dir.path + "/agent-" + name
        a.name = name
        return a
    }
}

/// Who may talk to the coordinator: the refusal matrix, over real sockets and TLS 1.3.
@Suite(.serialized) final class TransportTests {
    let live: LiveCoordinator

    init() throws { live = try LiveCoordinator() }

    @Test func theAdminCertificateWorks() throws {
        let nodes = try live.adminClient().request(MessageType.nodeList, EmptyBody(), as: NodeList.self)
        #expect(nodes.nodes.isEmpty)
    }

    @Test func noClientCertificateOnlyJoins() throws {
        let why = live.refused(cert: nil, key: nil)
        #expect(why?.contains("client certificate is required") == true, "\(why ?? "accepted")")
        #expect(live.logged("refused 127.0.0.1"))
    }

    @Test func anotherCAIsRefused() throws {
        let other = try CertificateAuthority.create(clusterID: live.coordinator.core.clusterID, now: live.clock.wall())
        let key = try PrivateKey.generate()
        let cert = try other.issue(key: key, commonName: "admin", role: .admin, notBefore: live.clock.wall() - 60, notAfter: live.clock.wall() + 3600)
        #expect(live.refused(cert: cert, key: key) != nil)
        // The coordinator's words (HakoTransport's, one set for every TLS failure).
        #expect(live.logged("TLS certificate verification failed: unable to get local issuer certificate"))
    }

    @Test func anExpiredCertificateIsRefused() throws {
        let ca = try live.ca
        let key = try PrivateKey.generate()
        let now = Timestamp.now().secondsSince1970
        let cert = try ca.issue(key: key, commonName: "admin", role: .admin, notBefore: now - 7200, notAfter: now - 3600)
        #expect(live.refused(cert: cert, key: key) != nil)
        #expect(live.logged("certificate has expired") || live.logged("certificate expired"))
        // The coordinator says which clock to look at, in words (it keeps no
        // date of a certificate it refused; the client sees the connection closed).
        #expect(live.logged("the certificate expired and this machine's clock says"))
    }

    /// `hako cluster credentials renew`: a new key and certificate over the old
    /// ones, written in place; they work, and the old certificate still does
    /// until it expires. Only an admin may ask.
    @Test func adminCredentialsRenew() throws {
        let old = try Certificate(pem: try String(contentsOfFile: live.admin.cert, encoding: .utf8))
        let oldKey = try String(contentsOfFile: live.admin.key, encoding: .utf8)
        let copy = live.dir.path + "/admin-copy"
        try FileManager.default.copyItem(atPath: live.dir.path + "/admin", toPath: copy)
        let renewed = try AdminCredentials(dir: copy).renew(with: try ClusterClient.admin(AdminCredentials(dir: copy), address: live.address))
        #expect(renewed.serial != old.serial && renewed.commonName == "admin" && renewed.role == "admin")
        #expect(renewed.notAfter - Timestamp.now().secondsSince1970 > 364 * 86400)
        #expect(try String(contentsOfFile: copy + "/admin.key", encoding: .utf8) != oldKey)
        #expect(try Certificate(pem: try String(contentsOfFile: copy + "/admin.crt", encoding: .utf8)).serial == renewed.serial)
        let nodes = try ClusterClient.admin(AdminCredentials(dir: copy), address: live.address)
            .request(MessageType.nodeList, EmptyBody(), as: NodeList.self)
        #expect(nodes.nodes.isEmpty)
        #expect(live.refused(cert: old, key: try PrivateKey(pem: oldKey)) == nil, "the old certificate is still valid")
        #expect(live.logged("issued admin credentials until"))
        #expect(MessageType.isAdmin(MessageType.credentialsRenew))
    }

    /// The agent's own certificate judged by its clock at start (its session
    /// would only see the connection closed).
    @Test func aNodeSaysWhenItsOwnCertificateIsOutsideTheClock() {
        let now = Timestamp(seconds: 1_796_000_000)
        #expect(TLSClock.ownCertificate(notBefore: 1_795_990_000, notAfter: 1_796_090_000, now: now, rejoin: "x") == nil)
        let expired = TLSClock.ownCertificate(notBefore: 1_795_000_000, notAfter: 1_795_900_000, now: now, rejoin: "join again")
        #expect(expired == "this node's certificate expired on 2026-11-28 21:06:40 UTC and this machine's clock says 2026-11-30 00:53:20 UTC: "
                + "if the clock is wrong, set it (hako doctor); if it is right, join again")
        let early = TLSClock.ownCertificate(notBefore: 1_796_100_000, notAfter: 1_796_900_000, now: now, rejoin: "x")
        #expect(early?.hasPrefix("this node's certificate is not valid until 2026-12-01 04:40:00 UTC and this machine's clock says 2026-11-30 00:53:20 UTC") == true, "\(early ?? "")")
    }

    /// A coordinator whose certificates start in three days (its clock was
    /// ahead when the cluster was made, or this one is behind): the client says so.
    @Test func aCertificateNotValidYetBlamesTheClock() throws {
        let ahead = ManualClock()
        ahead.advance(3 * 86400)
        let future = try LiveCoordinator(clock: ahead)
        do {
            _ = try future.adminClient().request(MessageType.nodeList, EmptyBody(), as: NodeList.self, timeout: 5)
            Issue.record("a certificate not valid yet was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("the certificate is not valid yet until") && text.contains("this clock is probably behind"), "\(text)")
        }
    }

    @Test func aCertificateTheCoordinatorNeverIssuedIsRefused() throws {
        // Signed by the right CA (its key leaked, say), but never recorded: refused.
        let ca = try live.ca
        let key = try PrivateKey.generate()
        let now = Timestamp.now().secondsSince1970
        let cert = try ca.issue(key: key, commonName: "admin", role: .admin, notBefore: now - 60, notAfter: now + 3600)
        #expect(live.refused(cert: cert, key: key)?.contains("not issued by this coordinator") == true)
    }

    /// Joining pins the CA, yields a node certificate; `node rm` revokes it.
    @Test func joinThenRevoke() throws {
        let identity = try Agent.join(token: try live.token(), coordinator: live.address, config: live.agentConfig("n1"),
                                      capacity: Resources(cpuMillis: 1000, memory: 1 << 30), log: .silent)
        #expect(identity.subnet == "10.88.0.0/24")
        let (_, cert, key) = try NodeCredentials(stateDir: live.agentConfig("n1").stateDir).load()
        #expect(cert.role == "node" && cert.commonName == identity.nodeID)
        // As a node, it may say hello; admin requests are not for it.
        let c = try live.client(cert: cert, key: key)
        let hello = HelloRequest(name: "n1", hostname: "n1", platform: Agent.platform, capacity: Resources(cpuMillis: 1000, memory: 1 << 30),
                                 labels: [:], agentVersion: "t", load: NodeLoad(), tasks: [])
        _ = try c.request(MessageType.hello, hello, as: HelloReply.self)
        #expect(throws: ClusterError.self) { try c.request(MessageType.nodeList, EmptyBody(), as: NodeList.self) }
        c.close()
        _ = try live.adminClient().request(MessageType.nodeRemove, NodeRemoveRequest(node: identity.nodeID, force: true), as: EmptyBody.self)
        let why = live.refused(cert: cert, key: key)
        #expect(why?.contains("revoked") == true, "\(why ?? "accepted")")
        #expect(live.logged("is revoked"))
    }

    @Test func tokensAreSingleUseExpireAndCannotBeForged() throws {
        let capacity = Resources(cpuMillis: 1000, memory: 1 << 30)
        let token = try live.token()
        _ = try Agent.join(token: token, coordinator: live.address, config: live.agentConfig("a"), capacity: capacity, log: .silent)
        // Used.
        #expect { try Agent.join(token: token, coordinator: live.address, config: self.live.agentConfig("b"), capacity: capacity, log: .silent) }
            throws: { "\($0)".contains("already used") }
        #expect(live.logged("join refused"))
        // Expired.
        let short = try live.token(ttl: 5)
        (live.clock as? ManualClock)?.advance(6)
        #expect { try Agent.join(token: short, coordinator: self.live.address, config: self.live.agentConfig("c"), capacity: capacity, log: .silent) }
            throws: { "\($0)".contains("expired") }
        // Forged: the right fingerprint, an invented id and secret.
        let real = try JoinToken(parsing: try live.token())
        let forged = JoinToken(caFingerprint: real.caFingerprint, id: real.id, secret: String(repeating: "0", count: 32))
        #expect { try Agent.join(token: forged.description, coordinator: self.live.address, config: self.live.agentConfig("d"), capacity: capacity, log: .silent) }
            throws: { "\($0)".contains("unknown join token") }
        // Another cluster's token: the agent refuses this coordinator before sending anything.
        let foreign = JoinToken.make(caFingerprint: String(repeating: "1", count: 64))
        #expect { try Agent.join(token: foreign.description, coordinator: self.live.address, config: self.live.agentConfig("e"), capacity: capacity, log: .silent) }
            throws: { "\($0)".contains("not the coordinator the token names") }
        #expect(!FileManager.default.fileExists(atPath: live.agentConfig("e").stateDir + "/node.pem"))
    }

    /// A connection without a certificate carries one join: a refused one is
    /// answered and the connection closed at once (what came with it is not
    /// read); five refusals from one address within a minute and its joins
    /// are refused unread.
    @Test func aRefusedJoinClosesAtOnceAndJoinsAreRateLimited() throws {
        let real = try JoinToken(parsing: try live.token())
        let key = try PrivateKey.generate()
        func attempt(secret: String, twice: Bool = false) throws -> (first: Envelope?, second: Envelope?, closed: Bool) {
            let c = try ClusterClient.connect(try Endpoint(parsing: live.address), tls: try TLSContext.client(certificate: nil, key: nil, trust: nil), timeout: 5)
            defer { c.close() }
            let forged = JoinToken(caFingerprint: real.caFingerprint, id: real.id, secret: secret)
            let join = JoinRequest(token: forged.description, csr: try CertificateRequest(key: key).pem(), name: "x", hostname: "x",
                                   platform: PlatformSpec(architecture: "arm64"), capacity: Resources(cpuMillis: 1000, memory: 1 << 30),
                                   labels: [:], agentVersion: "test")
            var lines = WireEncoder.request(MessageType.join, id: 1, join)
            if twice { lines += WireEncoder.request(MessageType.join, id: 2, join) }
            try c.send(lines)
            let first = try c.receive(timeout: 5)
            let second = try? c.receive(timeout: 5)
            return (first, second ?? nil, (second ?? nil) == nil)
        }
        let t0 = monotonicSeconds()
        let r = try attempt(secret: String(repeating: "0", count: 32), twice: true)
        #expect(r.first?.type == MessageType.error && r.first?.error?.message.contains("unknown join token") == true)
        #expect(r.second == nil && r.closed, "the second join on the refused connection is not answered: the connection closed")
        #expect(monotonicSeconds() - t0 < 5, "closed at once, not after the 30 s anonymous timeout")
        for i in 1...4 { _ = try attempt(secret: String(repeating: "\(i)", count: 32)) }
        // The sixth within the window is refused without looking at the token.
        let limited = try attempt(secret: String(repeating: "9", count: 32))
        #expect(limited.first?.error?.message.contains("too many refused joins from 127.0.0.1") == true, "\(String(describing: limited.first?.error))")
        // The window passes: the address may try again.
        (live.clock as? ManualClock)?.advance(61)
        let later = try attempt(secret: String(repeating: "8", count: 32))
        #expect(later.first?.error?.message.contains("unknown join token") == true)
    }

    /// Garbage gets error replies; a peer that keeps sending it is cut off.
    @Test func malformedLinesAndOversizedLines() throws {
        let c = try live.adminClient()
        try c.send(Array((String(repeating: "x", count: 10_000) + "\n").utf8))
        var env = try #require(try c.receive(timeout: 5))
        #expect(env.type == "error" && env.error?.code == .tooLong)
        try c.send(Array(#"{"v":9,"id":1,"type":"node.ls"}"#.utf8) + [0x0a])
        env = try #require(try c.receive(timeout: 5))
        #expect(env.error?.code == .unsupportedVersion)
        try c.send(Array(#"{"v":1,"id":2,"type":"node.ls"}"#.utf8) + [0x0a])
        env = try #require(try c.receive(timeout: 5))
        #expect(env.type == "reply" && env.re == 2, "a good line resets the count")
        try c.send(Array(#"{"v":1,"id":3,"type":"no.such"}"#.utf8) + [0x0a])
        env = try #require(try c.receive(timeout: 5))
        #expect(env.error?.code == .unknownType)
        for _ in 0..<3 { try c.send(Array("not json\n".utf8)) }
        var errors = 0
        while let e = try? c.receive(timeout: 5) {
            if e.type == "error" { errors += 1 }
        }
        #expect(errors == 3)
        #expect(live.logged("3 malformed lines in a row"))
        // The coordinator still serves everyone else.
        #expect(try live.adminClient().request(MessageType.nodeList, EmptyBody(), as: NodeList.self).nodes.isEmpty)
    }
}

/// A node in memory: tasks "run" the moment they start.
final class FakeRuntime: TaskRuntime, @unchecked Sendable {
    let tasks = Mutex<[String: ObservedTask]>([:])
    func observe() throws -> (tasks: [ObservedTask], running: Int) { tasks.withLock { (Array($0.values), $0.count) } }
    func start(_ a: Assignment, node: String, subnet: String, overlay: ClusterNetworkOptions?, networks: [String: NodeNetwork],
               files: [ContainerFile]) throws -> String {
        let id = UUID().uuidString
        tasks.withLock { $0[id] = ObservedTask(taskID: a.taskID, containerID: id, status: .running) }
        return id
    }
    func startExisting(_ c: String, files: [ContainerFile]) throws {}
    func stop(_ c: String, timeout: Int?) throws { tasks.withLock { $0[c]?.status = .exited } }
    func remove(_ c: String) throws { _ = tasks.withLock { $0.removeValue(forKey: c) } }
    func logs(_ c: String, tail: Int, since: Double?, until: Double?, maxBytes: Int) throws -> (entries: [(time: String, stream: String, text: String)], truncated: Bool) {
        ([("2026-01-01T00:00:00Z", "stdout", "line of \(c.prefix(8))")], false)
    }
}

struct FixedProbe: NodeProbe {
    func capacity() -> Resources { Resources(cpuMillis: 2000, memory: 2 << 30) }
    mutating func load(containers: Int) -> NodeLoad { NodeLoad(cpu: 0.1, memoryTotal: 2 << 30, memoryAvailable: 1 << 30, containers: containers) }
}

@Suite struct RenewalTests {
    /// A node that was off longer than its certificate's life renews it with
    /// its key alone (no token) within the window; a request signed with
    /// another key, a certificate not expired yet, one expired too long ago,
    /// and a removed node's are refused, in words.
    @Test func anExpiredNodeCertificateRenewsWithoutAToken() throws {
        let clock = ManualClock()
        let live = try LiveCoordinator(clock: clock) { $0.nodeCertTTL = 3600 }
        let config = live.agentConfig("sleeper")
        let id = try Agent.join(token: try live.token(), coordinator: live.address, config: config, capacity: FixedProbe().capacity(), log: .silent)
        let creds = NodeCredentials(stateDir: config.stateDir)
        let (_, first, _) = try creds.load()
        #expect(try Agent.renewExpiredCertificate(config: config, log: .silent) == nil, "valid: nothing to do")
        func ask(_ cert: Certificate, _ key: PrivateKey) throws -> String {
            let c = try ClusterClient.connect(try Endpoint(parsing: live.address),
                                              tls: try TLSContext.client(certificate: nil, key: nil, trust: try live.ca.certificate), timeout: 5)
            defer { c.close() }
            do {
                _ = try c.request(MessageType.renewExpired, RenewExpiredRequest(certificate: try cert.pem(), csr: try CertificateRequest(key: key).pem()),
                                  as: RenewReply.self, timeout: 5)
                return "renewed"
            } catch { return "\(error)" }
        }
        #expect(try ask(first, try creds.load().key).contains("has not expired"))

        clock.advance(2 * 86400)   // the node was off for two days
        #expect(try ask(first, try PrivateKey.generate()).contains("not signed with the certificate's key"))
        let later = Timestamp.now().secondsSince1970 + 2 * 86400
        let renewed = try #require(try Agent.renewExpiredCertificate(config: config, log: .silent, now: later))
        #expect(renewed.serial != first.serial && renewed.commonName == id.nodeID && renewed.notAfter > later)
        #expect(try creds.load().cert.serial == renewed.serial, "the new certificate is saved with the same key")
        try renewed.verify(against: try live.ca.certificate, at: later)
        #expect(live.logged("renewed the expired certificate of node sleeper"))

        clock.advance(40 * 86400)  // off for 40 days: too long
        let tooLate = Timestamp.now().secondsSince1970 + 42 * 86400
        #expect(throws: (any Error).self) { try Agent.renewExpiredCertificate(config: config, log: .silent, now: tooLate) }
        #expect(try ask(renewed, try creds.load().key).contains("expired more than 30 days ago: join again with a new token"))

        clock.advance(-39 * 86400)  // within the window again, but the node is removed
        _ = try live.adminClient().request(MessageType.nodeRemove, NodeRemoveRequest(node: id.nodeID, force: true), as: EmptyBody.self)
        #expect(try ask(renewed, try creds.load().key).contains("not a current node certificate"))
        #expect(live.logged("renewal of an expired certificate refused"))
    }

    /// A node certificate renews itself at half its life, over the session, and the new one works.
    @Test func nodeCertificatesRenewThemselves() throws {
        let live = try LiveCoordinator(clock: SystemClusterClock()) { $0.nodeCertTTL = 4 }
        var config = live.agentConfig("renew")
        config.renewAt = 0.5
        _ = try Agent.join(token: try live.token(), coordinator: live.address, config: config, capacity: FixedProbe().capacity(), log: .silent)
        let creds = NodeCredentials(stateDir: config.stateDir)
        let first = try creds.load().cert
        let agent = try Agent(config: config, runtime: FakeRuntime(), probe: FixedProbe(), log: .silent)
        let stopped = DispatchSemaphore(value: 0)
        Thread { agent.run(); stopped.signal() }.start()
        defer {
            agent.stop()
            _ = stopped.wait(timeout: .now() + 10)
        }
        let deadline = monotonicSeconds() + 15
        var renewed: Certificate?
        while monotonicSeconds() < deadline {
            if let c = try? creds.load().cert, c.serial != first.serial { renewed = c; break }
            usleep(100_000)
        }
        let cert = try #require(renewed, "the certificate was not renewed")
        #expect(cert.notAfter > first.notAfter && cert.commonName == first.commonName)
        try cert.verify(against: try live.ca.certificate)
        #expect(live.logged("renewed the certificate of node renew"))
        // The renewed identity opens a session of its own.
        let (_, c2, k2) = try creds.load()
        let client = try live.client(cert: c2, key: k2)
        let hello = HelloRequest(name: "renew", hostname: "renew", platform: Agent.platform, capacity: FixedProbe().capacity(),
                                 labels: [:], agentVersion: "t", load: NodeLoad(), tasks: [])
        #expect(throws: Never.self) { _ = try client.request(MessageType.hello, hello, as: HelloReply.self) }
    }
}
