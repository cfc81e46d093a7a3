#if canImport(Glibc)
import Glibc
#endif
import CHakoRaft
import HakoSystem
import HakoTransport
import Synchronization

/// Raft traffic between coordinators over mutual TLS. libraft's transport
/// (`CHakoRaft`) asks for a connection to a peer or hands over an accepted
/// one as one end of a socketpair; one thread per connection carries the
/// other end through OpenSSL: TLS 1.3, both sides presenting a coordinator
/// certificate of this cluster's CA. Anything else is refused and logged.
///
/// The dialling side opens with one line inside TLS, `HAKORAFT1 <id> <address>`:
/// the identity libraft's own TCP transport sends in its handshake.
///
/// A coordinator removed with `coordinator rm` keeps a valid coordinator
/// certificate: the accepting side also refuses (and logs) a peer whose Raft
/// id was removed or whose certificate was revoked at its removal, as the
/// committed store says (`Refusals`), and ends such a peer's open connections.
public final class RaftTransport: @unchecked Sendable {
    /// Who may not speak Raft here, from committed entries only (applied in
    /// log order, so a coordinator never refuses a member the log has not
    /// removed): Raft ids removed with `coordinator rm` and not added again
    /// since, and the certificates revoked at their removal.
    public struct Refusals: Sendable, Equatable {
        public var removedIDs: Set<UInt64> = []
        public var revokedSerials: Set<String> = []
        public init() {}
    }

    public struct Credentials: Sendable {
        public var certificate: Certificate
        public var key: PrivateKey
        /// The root that signed `certificate`.
        public var chain: Certificate
        public var trust: TrustBundle
        public var clusterID: String
        public init(certificate: Certificate, key: PrivateKey, chain: Certificate, trust: TrustBundle, clusterID: String) {
            self.certificate = certificate
            self.key = key
            self.chain = chain
            self.trust = trust
            self.clusterID = clusterID
        }
    }

    let settings: RaftSettings
    /// The identity and trust of new connections (replaced when the CA rotates;
    /// open connections keep theirs).
    private let identity: Mutex<(credentials: Credentials, server: TLSContext, client: TLSContext)>
    var credentials: Credentials { identity.withLock { $0.credentials } }
    let log: ClusterLog
    private let stopping = Atomic<Bool>(false)
    /// The Raft server connections are handed to; nil once it stops.
    private let raft = Mutex<RaftHandle?>(nil)
    /// The C server's pointer; its entry points are thread-safe.
    struct RaftHandle: @unchecked Sendable { let pointer: OpaquePointer }
    private let threads = Atomic<Int>(0)
    /// Cut off from every peer: connections closed, none made or taken (the tests' partition).
    private let isolated = Atomic<Bool>(false)
    private let refusals = Mutex<Refusals>(Refusals())
    /// Bumped when `refusals` changes: open connections check their peer again.
    private let refusalsVersion = Atomic<Int>(0)
    /// When a refusal of each Raft id was last logged as a warning (a removed
    /// coordinator still running dials at every election timeout).
    private let refusalLogged = Mutex<[UInt64: Double]>([:])
    static let refusalLogInterval = 60.0
    var listener: FileDescriptor?
    static let preamble = "HAKORAFT1"
    static let handshakeTimeout = 5.0
    static let bufferLimit = 4 << 20

    init(settings: RaftSettings, credentials: Credentials, log: ClusterLog) throws(ClusterError) {
        self.settings = settings
        self.log = log
        identity = Mutex(try RaftTransport.contexts(credentials))
    }

    private static func contexts(_ c: Credentials) throws(ClusterError) -> (credentials: Credentials, server: TLSContext, client: TLSContext) {
        (c, try TLSContext.server(certificate: c.certificate, key: c.key, chain: c.chain, trust: c.trust),
         try TLSContext.client(certificate: c.certificate, key: c.key, trusting: c.trust.roots))
    }

    /// Another certificate or trust (a CA rotation) for the connections made
    /// and accepted from now on.
    func reload(_ credentials: Credentials) throws(ClusterError) {
        let next = try RaftTransport.contexts(credentials)
        identity.withLock { $0 = next }
    }

    /// Binds the Raft port and accepts on a thread of its own; each
    /// authenticated peer goes to the Raft server as the local end of a socketpair.
    func listen() throws(ClusterError) {
        let l = try Sockets.listen(settings.address)
        listener = l
        let lfd = l.rawValue
        spawn { [self] in
            while !stopping.load(ordering: .relaxed) {
                var p = pollfd(fd: lfd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 200) > 0 else { continue }
                guard let (fd, peer) = Sockets.acceptPeer(l) else { continue }
                if isolated.load(ordering: .relaxed) { fd.close(); continue }
                spawn { [self] in self.serve(fd, peer: peer) }
            }
        }
    }

    /// A network partition for tests: while on, every Raft connection of
    /// this coordinator is closed and none is made or accepted.
    func isolate(_ on: Bool) { isolated.store(on, ordering: .relaxed) }

    func setRefusals(_ r: Refusals) {
        let changed = refusals.withLock { old -> Bool in
            defer { old = r }
            return old != r
        }
        if changed { refusalsVersion.add(1, ordering: .relaxed) }
    }

    /// Why a peer presenting this Raft id and certificate is refused, or nil.
    func refusal(id: UInt64, serial: String) -> String? {
        let r = refusals.withLock { $0 }
        if r.revokedSerials.contains(serial) {
            return "certificate \(serial) of raft id \(id) was revoked when its coordinator was removed (hako cluster coordinator rm)"
        }
        if r.removedIDs.contains(id) { return "raft id \(id) was removed from the cluster (hako cluster coordinator rm)" }
        return nil
    }

    /// A warning the first time in a while for each Raft id, else debug.
    private func logRefusal(_ peer: String, id: UInt64, _ why: String) {
        let now = monotonicSeconds()
        let warn = refusalLogged.withLock { last -> Bool in
            if let t = last[id], now - t < RaftTransport.refusalLogInterval { return false }
            last[id] = now
            return true
        }
        if warn { log.warning("raft: refused \(peer): \(why)") } else { log.debug("raft: refused \(peer): \(why)") }
    }

    func attach(_ handle: OpaquePointer) {
        let h = RaftHandle(pointer: handle)
        raft.withLock { $0 = h }
    }

    /// Hands a connection to the Raft server: waits for it while it starts
    /// (libraft dials before `hako_raft_start` returns); false once it stopped.
    private func handOver(_ give: (OpaquePointer) -> Void) -> Bool {
        for _ in 0..<500 {
            if stopping.load(ordering: .relaxed) { return false }
            let done = raft.withLock { h -> Bool in
                guard let h else { return false }
                give(h.pointer)
                return true
            }
            if done { return true }
            usleep(10_000)
        }
        return false
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        raft.withLock { $0 = nil }
        // Every thread notices within its 200 ms poll.
        for _ in 0..<50 where threads.load(ordering: .relaxed) > 0 { usleep(20_000) }
        listener?.close()
        listener = nil
    }

    // MARK: connections

    private func serve(_ fd: FileDescriptor, peer: String) {
        guard let tls = try? TLSConnection(fd: fd, peer: peer, context: identity.withLock({ $0.server })) else { fd.close(); return }
        guard let cert = handshake(tls, peer: peer) else { tls.close(); return }
        // The preamble: one line.
        var line: [UInt8] = []
        var rest: [UInt8] = []
        let deadline = monotonicSeconds() + RaftTransport.handshakeTimeout
        while monotonicSeconds() < deadline, !stopping.load(ordering: .relaxed) {
            let (bytes, st) = tls.drain(max: 512)
            line += bytes
            if let nl = line.firstIndex(of: 10) {
                rest = Array(line[(nl + 1)...])
                line = Array(line[..<nl])
                break
            }
            if line.count > 512 || st == .closed { break }
            if case .failed = st { break }
            var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 200)
        }
        let words = String(decoding: line, as: UTF8.self).split(separator: " ").map(String.init)
        guard words.count == 3, words[0] == RaftTransport.preamble, let id = UInt64(words[1]), id != 0 else {
            log.warning("raft: refused \(peer): no Raft preamble")
            tls.close()
            return
        }
        if let why = refusal(id: id, serial: cert.serial) {
            logRefusal(peer, id: id, why)
            tls.close()
            return
        }
        guard let local = pair(tls) else { return }
        let handed = handOver { hako_raft_accepted($0, id, words[2], local.theirs) }
        if !handed { close(local.theirs); close(local.ours); tls.close(); return }
        pump(tls, local: local.ours, pending: rest, from: (id, cert.serial, peer))
    }

    func dial(handle: UInt64, id: UInt64, address: String) {
        spawn { [self] in
            var fdOut: Int32 = -1
            var tls: TLSConnection?
            var local: (ours: Int32, theirs: Int32)?
            do {
                if isolated.load(ordering: .relaxed) { throw ClusterError.network("isolated") }
                let ep = try Endpoint(parsing: address)
                let fd = try Sockets.connect(ep, timeout: 2)
                let t = try TLSConnection(fd: fd, peer: address, context: identity.withLock({ $0.client }))
                tls = t
                if handshake(t, peer: address) != nil {
                    let hello = Array("\(RaftTransport.preamble) \(settings.id) \(settings.address)\n".utf8)
                    if writeAll(t, hello[...]) {
                        local = pair(t)
                        fdOut = local?.theirs ?? -1
                    }
                }
            } catch {
                log.debug("raft: cannot reach \(address): \(error)")
            }
            let handed = handOver { hako_raft_connected($0, handle, fdOut) }
            guard let t = tls else { return }
            guard handed, let local else {
                if let local { close(local.ours); if !handed { close(local.theirs) } }
                t.close()
                return
            }
            pump(t, local: local.ours, pending: [])
        }
    }

    /// Handshake within the timeout, then the peer must hold a coordinator
    /// certificate of this cluster: that certificate, or nil (refused and logged).
    private func handshake(_ tls: TLSConnection, peer: String) -> Certificate? {
        let deadline = monotonicSeconds() + RaftTransport.handshakeTimeout
        while true {
            let st = tls.handshakeStep()
            var events: Int16
            switch st {
            case .done:
                guard let cert = tls.peerCertificate else {
                    log.warning("raft: refused \(peer): no certificate")
                    return nil
                }
                guard cert.organization == "hako-cluster-\(credentials.clusterID)" else {
                    log.warning("raft: refused \(peer): a certificate of another cluster")
                    return nil
                }
                guard cert.role == PKIRole.coordinator.rawValue else {
                    log.warning("raft: refused \(peer): a \(cert.role) certificate is not a coordinator's")
                    return nil
                }
                return cert
            case .wantRead: events = Int16(POLLIN)
            case .wantWrite: events = Int16(POLLOUT)
            case .closed:
                log.warning("raft: refused \(peer): closed during the TLS handshake")
                return nil
            case .failed(let why):
                log.warning("raft: refused \(peer): TLS \(why)")
                return nil
            }
            let left = deadline - monotonicSeconds()
            if left <= 0 || stopping.load(ordering: .relaxed) {
                log.warning("raft: refused \(peer): no TLS handshake within \(Int(RaftTransport.handshakeTimeout)) s")
                return nil
            }
            var p = pollfd(fd: tls.fd.rawValue, events: events, revents: 0)
            _ = poll(&p, 1, Int32(min(200, left * 1000)))
        }
    }

    private func writeAll(_ tls: TLSConnection, _ bytes: ArraySlice<UInt8>) -> Bool {
        var rest = bytes
        let deadline = monotonicSeconds() + RaftTransport.handshakeTimeout
        while !rest.isEmpty, monotonicSeconds() < deadline {
            let (n, st) = tls.writeStep(rest)
            rest = rest.dropFirst(n)
            switch st {
            case .closed, .failed: return false
            default: break
            }
            if !rest.isEmpty {
                var p = pollfd(fd: tls.fd.rawValue, events: Int16(POLLOUT | POLLIN), revents: 0)
                _ = poll(&p, 1, 200)
            }
        }
        return rest.isEmpty
    }

    private func pair(_ tls: TLSConnection) -> (ours: Int32, theirs: Int32)? {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            log.error("raft: socketpair: \(String(cString: strerror(errno)))")
            tls.close()
            return nil
        }
        Sockets.setNonBlocking(fds[0])
        return (fds[0], fds[1])
    }

    /// Carries bytes both ways until either side closes or the transport
    /// stops (or is isolated); an accepted connection (`from`) also ends once
    /// its peer is refused (removed meanwhile).
    private func pump(_ tls: TLSConnection, local: Int32, pending: [UInt8], from: (id: UInt64, serial: String, peer: String)? = nil) {
        defer {
            close(local)
            tls.close()
        }
        var toLocal = pending[...]
        var toNet = ArraySlice<UInt8>()
        var buf = [UInt8](repeating: 0, count: 65536)
        let net = tls.fd.rawValue
        var checked = -1 // checked at once: a removal may have been applied since `serve` looked
        while !stopping.load(ordering: .relaxed) && !isolated.load(ordering: .relaxed) {
            if let from, refusalsVersion.load(ordering: .relaxed) != checked {
                checked = refusalsVersion.load(ordering: .relaxed)
                if let why = refusal(id: from.id, serial: from.serial) {
                    logRefusal(from.peer, id: from.id, why)
                    return
                }
            }
            var p = [pollfd(fd: net, events: 0, revents: 0), pollfd(fd: local, events: 0, revents: 0)]
            if toLocal.count < RaftTransport.bufferLimit { p[0].events |= Int16(POLLIN) }
            if !toNet.isEmpty { p[0].events |= Int16(POLLOUT) }
            if toNet.count < RaftTransport.bufferLimit { p[1].events |= Int16(POLLIN) }
            if !toLocal.isEmpty { p[1].events |= Int16(POLLOUT) }
            if !tls.hasPendingBytes { _ = poll(&p, 2, 200) }
            if p[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 || tls.hasPendingBytes {
                let (bytes, st) = tls.drain(max: 1 << 20)
                if toLocal.isEmpty { toLocal = bytes[...] } else { toLocal.append(contentsOf: bytes) }
                if st == .closed { return }
                if case .failed(let why) = st { log.debug("raft: connection lost: TLS \(why)"); return }
            }
            if p[1].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = buf.withUnsafeMutableBytes { read(local, $0.baseAddress, $0.count) }
                if n == 0 { return }
                if n > 0 { toNet.append(contentsOf: buf[0..<n]) } else if errno != EAGAIN && errno != EINTR { return }
            }
            if !toNet.isEmpty {
                let (n, st) = tls.writeStep(toNet)
                toNet = toNet.dropFirst(n)
                if st == .closed { return }
                if case .failed = st { return }
            }
            if !toLocal.isEmpty {
                let n = toLocal.withUnsafeBytes { write(local, $0.baseAddress, $0.count) }
                if n > 0 { toLocal = toLocal.dropFirst(n) } else if n < 0 && errno != EAGAIN && errno != EINTR { return }
            }
            if toNet.isEmpty { toNet = [] }
            if toLocal.isEmpty { toLocal = [] }
        }
    }

    /// A detached thread, counted so that `stop` can wait for them.
    private func spawn(_ body: @escaping () -> Void) {
        threads.add(1, ordering: .relaxed)
        let started = Threads.detach { [self] in
            body()
            threads.subtract(1, ordering: .relaxed)
        }
        if !started { threads.subtract(1, ordering: .relaxed) }
    }
}
