#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import HakoTransport

/// A blocking line-protocol client over mutual TLS: the CLI's, and the
/// agent's for joining. Every wait is bounded.
public final class ClusterClient {
    let stream: TLSConnection
    private var framer: LineFramer
    private var queue: [[UInt8]] = []
    private var nextID = 1
    public let endpoint: Endpoint

    init(stream: TLSConnection, endpoint: Endpoint, maxLine: Int) {
        self.stream = stream
        self.endpoint = endpoint
        framer = LineFramer(maxLine: maxLine)
    }

    deinit { stream.close() }

    /// Connects and completes the TLS handshake within `timeout` seconds.
    public static func connect(_ endpoint: Endpoint, tls: TLSContext, timeout: Double = 10, maxLine: Int = 64 << 20) throws(ClusterError) -> ClusterClient {
        let deadline = monotonicSeconds() + timeout
        let fd = try Sockets.connect(endpoint, timeout: timeout)
        let s: TLSConnection
        do { s = try TLSConnection(fd: fd, peer: endpoint.description, context: tls) } catch { throw .security(error.reason) }
        let c = ClusterClient(stream: s, endpoint: endpoint, maxLine: maxLine)
        while true {
            switch s.handshakeStep() {
            case .done: return c
            case .wantRead: try c.wait(POLLIN, until: deadline, what: "the TLS handshake")
            case .wantWrite: try c.wait(POLLOUT, until: deadline, what: "the TLS handshake")
            case .closed: throw .security("\(endpoint) closed the connection during the TLS handshake")
            case .failed(let why): throw .security("\(endpoint): TLS \(why)")
            }
        }
    }

    /// The admin CLI's connection: the admin certificate, the server verified
    /// against the cluster CA and required to be the coordinator.
    public static func admin(_ creds: AdminCredentials, address: String?, timeout: Double = 10) throws(ClusterError) -> ClusterClient {
        let ca: [Certificate], cert: Certificate, key: PrivateKey
        do {
            ca = try Certificate.bundle(pem: try FS.readString(creds.caCert))
            cert = try Certificate(pem: try FS.readString(creds.cert))
            key = try PrivateKey(pem: try FS.readString(creds.key))
        } catch let e as ClusterError {
            throw e
        } catch {
            throw .security("no admin credentials in \(creds.dir) (written by `hako cluster init`; --credentials DIR): \(error)")
        }
        guard let known = address ?? creds.coordinatorAddress() else {
            throw .invalid("no coordinator address: give --coordinator HOST:PORT")
        }
        let tls = try TLSContext.client(certificate: cert, key: key, trusting: ca)
        var learned: [String] = []
        let client = try leader(among: known.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" }).map(String.init), tls: tls, timeout: timeout, learned: &learned)
        // The saved list follows the cluster as the agents' does: the leader
        // first (the next command asks it first), then the others it names.
        if address == nil { creds.remember(coordinators: learned) }
        return client
    }

    /// Connects to the coordinator that leads: the first of `addresses` that
    /// answers says which one leads (itself, or another it names). With no
    /// leader anywhere: "no quorum: K of N coordinators reachable". `learned`:
    /// the leader's address as reached, then every other coordinator's as the
    /// leader names them (empty for a coordinator without Raft).
    static func leader(among addresses: [String], tls: TLSContext, timeout: Double) throws(ClusterError) -> ClusterClient {
        var learned: [String] = []
        return try leader(among: addresses, tls: tls, timeout: timeout, learned: &learned)
    }

    static func leader(among addresses: [String], tls: TLSContext, timeout: Double, learned: inout [String]) throws(ClusterError) -> ClusterClient {
        var queue = addresses
        var seen = Set<String>()
        var reachable = Set<String>()
        var everyone = Set(addresses)
        var lastError: ClusterError?
        let each = addresses.count > 1 ? min(timeout, 3) : timeout
        while !queue.isEmpty {
            let addr = queue.removeFirst()
            guard seen.insert(addr).inserted else { continue }
            do {
                let ep = try Endpoint(parsing: addr, defaultPort: CoordinatorConfig.defaultPort)
                let c = try connect(ep, tls: tls, timeout: each)
                try c.requireCoordinator()
                reachable.insert(addr)
                let r: CoordinatorsReply
                do { r = try c.request(MessageType.coordinators, EmptyBody(), as: CoordinatorsReply.self, timeout: each) } catch {
                    // A coordinator that predates high availability leads alone.
                    if case ClusterError.wire(code: WireCode.unknownType.rawValue, _) = error { return c }
                    throw error
                }
                everyone.formUnion(r.coordinators)
                if r.leader == r.address {
                    learned = [addr] + r.coordinators.filter { !$0.isEmpty && $0 != addr && $0 != r.address }
                    return c
                }
                if let l = r.leader { queue.insert(l, at: 0); seen.remove(l) } else {
                    for a in r.coordinators where !seen.contains(a) { queue.append(a) }
                }
            } catch let e as ClusterError {
                lastError = e
            } catch {
                lastError = .network("\(addr): \(error)")
            }
        }
        if everyone.count > 1 || !reachable.isEmpty {
            throw .network("no quorum: \(reachable.count) of \(everyone.count) coordinator\(everyone.count == 1 ? "" : "s") reachable")
        }
        throw lastError ?? .network("no coordinator reachable")
    }

    /// One coordinator as `coordinator ls` shows it.
    public struct CoordinatorState: Codable, Sendable, Equatable {
        public var id: UInt64
        public var address: String
        public var raftAddress: String
        public var leader: Bool
        public var reachable: Bool
    }

    /// Every coordinator, asked one by one (this works without quorum too):
    /// which answer, and which one they say leads.
    public static func surveyCoordinators(_ creds: AdminCredentials, address: String?, timeout: Double = 3) throws(ClusterError) -> [CoordinatorState] {
        let ca: [Certificate], cert: Certificate, key: PrivateKey
        do {
            ca = try Certificate.bundle(pem: try FS.readString(creds.caCert))
            cert = try Certificate(pem: try FS.readString(creds.cert))
            key = try PrivateKey(pem: try FS.readString(creds.key))
        } catch {
            throw .security("no admin credentials in \(creds.dir) (written by `hako cluster init`; --credentials DIR): \(error)")
        }
        guard let known = address ?? creds.coordinatorAddress() else { throw .invalid("no coordinator address: give --coordinator HOST:PORT") }
        let tls = try TLSContext.client(certificate: cert, key: key, trusting: ca)
        var queue = known.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" }).map(String.init)
        var asked = Set<String>()
        var answered = Set<String>()
        var answeredIDs = Set<UInt64>()
        // By Raft id (by address for a coordinator without one, or not heard from).
        var members: [String: CoordinatorsReply.Member] = [:]
        func slot(_ m: CoordinatorsReply.Member) -> String { m.id == 0 ? m.address : "#\(m.id)" }
        var leader: String?
        var leaderID: UInt64?
        // The leader's list is the membership (a removed coordinator still names itself).
        var leaderMembers: [CoordinatorsReply.Member]?
        while !queue.isEmpty {
            let a = queue.removeFirst()
            guard asked.insert(a).inserted else { continue }
            guard let ep = try? Endpoint(parsing: a, defaultPort: CoordinatorConfig.defaultPort),
                  let c = try? connect(ep, tls: tls, timeout: timeout), (try? c.requireCoordinator()) != nil,
                  let r = try? c.request(MessageType.coordinators, EmptyBody(), as: CoordinatorsReply.self, timeout: timeout) else {
                if !members.values.contains(where: { $0.address == a }) { members[a] = .init(id: 0, address: a, raftAddress: "") }
                continue
            }
            answered.insert(a)
            answered.insert(r.address)
            if let id = r.id, id != 0 { answeredIDs.insert(id) }
            if leader == nil { leader = r.leader }
            if leaderID == nil, let l = r.leaderID, l != 0 { leaderID = l }
            let leads = r.id.map { $0 != 0 && $0 == r.leaderID } ?? (r.leader == r.address)
            if leads { leaderMembers = r.members }
            if a != r.address, members[a]?.id == 0 { members[a] = nil }
            for m in r.members where !m.address.isEmpty {
                members[slot(m)] = m
                if !asked.contains(m.address) { queue.append(m.address) }
            }
        }
        let listed = leaderMembers ?? Array(members.values)
        return listed.sorted { ($0.id, $0.address) < ($1.id, $1.address) }.map { m in
            // By Raft id where the coordinators give one: several on one host can share an address.
            let leads = leaderID.map { m.id == $0 } ?? (m.address == leader)
            let reachable = m.id != 0 && !answeredIDs.isEmpty ? answeredIDs.contains(m.id) : answered.contains(m.address)
            return CoordinatorState(id: m.id, address: m.address, raftAddress: m.raftAddress, leader: leads, reachable: reachable)
        }
    }

    /// The server must hold the coordinator's certificate, not a node's.
    func requireCoordinator() throws(ClusterError) {
        guard let peer = stream.peerCertificate, peer.role == PKIRole.coordinator.rawValue else {
            throw .security("\(endpoint) is not a hako coordinator (its certificate has no coordinator role)")
        }
    }

    public var peerChain: [Certificate] { stream.peerChain }
    public var peerCertificate: Certificate? { stream.peerCertificate }

    func wait(_ events: Int32, until deadline: Double, what: String) throws(ClusterError) {
        let left = deadline - monotonicSeconds()
        guard left > 0 else { throw .network("\(endpoint): timed out waiting for \(what)") }
        var p = pollfd(fd: stream.fd.rawValue, events: Int16(events), revents: 0)
        _ = poll(&p, 1, Int32(min(left, 3600) * 1000) + 1)
    }

    public func send(_ line: [UInt8], timeout: Double = 10) throws(ClusterError) {
        let deadline = monotonicSeconds() + timeout
        var off = 0
        while off < line.count {
            let (n, st) = stream.writeStep(line[off...])
            off += n
            switch st {
            case .done: continue
            case .wantWrite: try wait(POLLOUT, until: deadline, what: "the coordinator to read")
            case .wantRead: try wait(POLLIN, until: deadline, what: "the coordinator to read")
            case .closed: throw .network("\(endpoint) closed the connection")
            case .failed(let why): throw .network("\(endpoint): TLS \(why)")
            }
        }
    }

    /// The next line; nil when the peer closed the connection.
    public func receiveLine(timeout: Double) throws(ClusterError) -> [UInt8]? {
        let deadline = monotonicSeconds() + timeout
        while queue.isEmpty {
            let (bytes, st) = stream.drain(max: 1 << 20)
            for e in framer.push(bytes) {
                switch e {
                case .line(let l): queue.append(l)
                case .tooLong: throw .wire(code: WireCode.tooLong.rawValue, message: "\(endpoint) sent a line longer than \(framer.maxLine) bytes")
                }
            }
            if !queue.isEmpty { break }
            switch st {
            case .done: continue
            case .wantRead: try wait(POLLIN, until: deadline, what: "an answer")
            case .wantWrite: try wait(POLLOUT, until: deadline, what: "an answer")
            case .closed: return nil
            case .failed(let why): throw .network("\(endpoint): TLS \(why)")
            }
        }
        return queue.removeFirst()
    }

    public func receive(timeout: Double) throws -> Envelope? {
        guard let line = try receiveLine(timeout: timeout) else { return nil }
        return try WireDecoder.decode(line)
    }

    /// Sends a request and waits for its reply; an error reply throws.
    public func request<B: Encodable, R: Decodable>(_ type: String, _ body: B, as: R.Type, timeout: Double = 30) throws -> R {
        let id = nextID
        nextID += 1
        try send(WireEncoder.request(type, id: id, body))
        let deadline = monotonicSeconds() + timeout
        while true {
            guard let env = try receive(timeout: max(0.001, deadline - monotonicSeconds())) else {
                throw ClusterError.network("\(endpoint) closed the connection")
            }
            if env.re == id || (env.re == nil && env.type == MessageType.error) {
                if env.type == MessageType.error {
                    let e = env.error ?? WireError(.internalError, "error without a message")
                    throw ClusterError.wire(code: e.code.rawValue, message: e.message)
                }
                return try env.body(R.self)
            }
            // Anything else (an event) waits for a later receive.
        }
    }

    public func close() { stream.close() }
}
