import HakoSystem

/// Who is on the other end of a connection, from its certificate.
public enum PeerIdentity: Sendable, Equatable {
    /// No client certificate: may only join.
    case anonymous
    case node(String)
    case admin
    /// Another coordinator of this cluster (joining, or asking who leads).
    case coordinator
}

/// What the I/O layer must do for the core.
public enum Outgoing: Sendable, Equatable {
    case send(connection: Int, line: [UInt8])
    case close(connection: Int, reason: String)
}

/// A random generator behind an existential, so the core can hold either a
/// seeded one (tests) or the kernel's (daemon).
public struct AnyRandom: RandomNumberGenerator, Sendable {
    var base: any RandomNumberGenerator & Sendable
    public init(_ base: any RandomNumberGenerator & Sendable) { self.base = base }
    public mutating func next() -> UInt64 { base.next() }
}

/// The coordinator without sockets: dispatcher, orchestrator, scheduler and
/// store wired together. The I/O layer hands it envelopes and peer identities
/// and carries out what `takeOutgoing()` returns; tests drive it directly with
/// a manual clock and a seeded generator, so nothing sleeps.
public final class CoordinatorCore {
    public let config: CoordinatorConfig
    let store: Store
    public internal(set) var state: ClusterState
    public internal(set) var dispatcher: Dispatcher
    let scheduler: Scheduler
    let orchestrator: Orchestrator
    let subnets: SubnetAllocator
    let networkAllocator: NetworkAllocator
    /// The root that signs (the new one from the start of a rotation).
    var ca: CertificateAuthority
    /// The roots accepted from clients: `ca`, and the previous one while a rotation runs.
    public internal(set) var trust: TrustBundle
    /// The rotation in progress (stored as meta `ca_rotation`).
    public internal(set) var rotation: CARotation?
    /// Bumped whenever the coordinator's TLS identity or trust changes: the
    /// listener builds a new context for the connections that follow.
    public internal(set) var tlsGeneration = 0
    /// Monotonic time before which a rotation that could not finish is not tried again.
    var rotationRetryAt = 0.0
    let clock: any ClusterClock
    var rng: AnyRandom
    let log: ClusterLog
    public let clusterID: String

    /// Something changed that may need new tasks or placements.
    var dirty = true
    /// Wall time at which a delayed task becomes schedulable.
    var nextWake = Double.infinity
    var generations: [String: Int] = [:]
    var outgoing: [Outgoing] = []
    /// The event history (stored, the last `Store.eventCapacity`).
    public private(set) var events: [ClusterEvent] = []
    var followers: Set<Int> = []
    /// Monotonic times of refused joins in the last window, by source host.
    var refusedJoins: [String: [Double]] = [:]
    var nextRequestID = 1
    var pendingLogs: [Int: PendingLogs] = [:]
    /// Node certificates' expiry, by node (from the store, for `node inspect`).
    var nodeCertExpiry: [String: Double] = [:]
    /// The overlay's peer map last computed, and the session each node received it on.
    var overlayMap: [OverlayPeer] = []
    var overlayMesh: [MeshPort] = []
    var overlayNames: [String: [String]] = [:]
    var overlayNetworkMap: [OverlayNetwork] = []
    var overlaySent: [String: Int] = [:]
    /// The device paths last asked of the nodes, and the session each node received them on.
    var deviceRequest: [String] = []
    var deviceRequestSent: [String: Int] = [:]
    public internal(set) var metrics = CoordinatorMetrics()
    /// Seals and opens secrets and configs (the key of `<data_dir>/pki/secrets.key`); nil: none can be made.
    public var secretBox: SecretBox?
    /// The secrets and configs each node's session has received (by connection).
    var secretsSent: [String: (connection: Int, ids: Set<String>)] = [:]
    /// With several coordinators: commits a batch through Raft (returns once
    /// it is applied to the local store); nil: written to the store directly.
    public var replicate: ((StoreBatch) throws -> Void)?
    /// Called when `replicate` fails: the changes in memory must not be kept.
    public var replicationFailed: (() -> Void)?
    /// With Raft: this coordinator's id, and the voters' (a CA rotation waits for every coordinator).
    public var raftID: UInt64?
    public var voters: () -> Set<UInt64> = { [] }
    /// Batches committed (the coordinator settles its memory once they stop).
    public internal(set) var commits = 0

    struct PendingLogs {
        var admin: Int
        var adminRequest: Int
        var waiting: [Int: String]   // request id → node id
        var entries: [ServiceLogEntry] = []
        var truncated = false
        var deadline: Double
        var names: [String: String]  // task id → task name
        var missing: [String] = []
    }

    /// `allowance`: how long every known node has to say hello before its
    /// grace period starts (default `down_after`: after a process start the
    /// agents may have backed off or be starting themselves; a new leader
    /// passes `Coordinator.leadershipAllowance`).
    public init(config: CoordinatorConfig, store: Store, ca: CertificateAuthority, trust: TrustBundle? = nil, clock: any ClusterClock = SystemClusterClock(),
                random: any RandomNumberGenerator & Sendable = KernelRandom(), log: ClusterLog = .silent, allowance: Double? = nil) throws {
        self.config = config
        self.store = store
        self.ca = ca
        self.trust = trust ?? TrustBundle([ca.certificate])
        self.clock = clock
        self.rng = AnyRandom(random)
        self.log = log
        scheduler = Scheduler(weights: config.weights)
        orchestrator = Orchestrator(history: config.taskHistory)
        subnets = try SubnetAllocator(cluster: config.clusterCIDR, prefix: config.nodeSubnetPrefix)
        networkAllocator = try NetworkAllocator(pool: config.networkPool, cluster: config.clusterCIDR, clusterVNI: config.overlayVNI)
        let stored = try store.load()
        state = ClusterState(stored: stored)
        events = stored.events
        guard let id = state.meta["cluster_id"] else { throw ClusterError.store("the database has no cluster id: run `hako cluster init` first") }
        clusterID = id
        if let cidr = state.meta["cluster_cidr"], cidr != config.clusterCIDR || state.meta["node_subnet_prefix"] != String(config.nodeSubnetPrefix) {
            throw ClusterError.config(key: "cluster_cidr", reason: "the cluster was made with \(cidr) and /\(state.meta["node_subnet_prefix"] ?? "?") per node; node subnets cannot move")
        }
        dispatcher = Dispatcher(period: config.heartbeatPeriod, jitter: config.heartbeatJitter,
                                suspectAfterMissed: config.suspectAfterMissed, grace: config.downAfter)
        let now = clock.monotonic()
        for id in state.nodes.keys { dispatcher.track(id, now: now, allowance: allowance ?? config.downAfter) }
        for c in state.certs.values where c.role == PKIRole.node.rawValue && !c.revoked {
            nodeCertExpiry[c.subject] = max(nodeCertExpiry[c.subject] ?? 0, c.notAfter)
        }
        for (subnet, node) in state.leases where !subnets.owns(subnet) {
            throw ClusterError.config(key: "cluster_cidr", reason: "node \(node) holds \(subnet), outside \(config.clusterCIDR)")
        }
        resumeRotation()
        log.info("loaded \(state.nodes.count) nodes, \(state.services.count) services, \(state.tasks.count) tasks")
    }

    // MARK: the loop's entry points

    /// Evaluates liveness, reconciles and schedules when something changed,
    /// writes the changes, and queues the assignments they imply.
    public func tick() {
        let now = clock.monotonic()
        let wall = clock.wall()
        for (node, from, to) in dispatcher.evaluate(now: now) {
            let name = state.nodes[node]?.name ?? node
            log.info("node \(name) \(from.rawValue) → \(to.rawValue)")
            record(ClusterEvent(time: wall, kind: "node", action: to.rawValue, id: node, name: name,
                                message: to == .down ? "silent for more than \(Durations.format(config.downAfter))" : ""))
            dirty = true
        }
        if wall >= nextWake { dirty = true }
        expirePendingLogs(now: now)
        if dirty { converge() }
        finishRotationIfComplete()
        flush()
    }

    /// Orchestrate, then schedule; no effect when nothing changed.
    func converge() {
        dirty = false
        let wall = clock.wall()
        var evs: [ClusterEvent] = []
        let due = orchestrator.reconcile(&state, status: { self.dispatcher.status($0) }, now: wall, newID: Identifiers.make, events: &evs)
        for e in evs { record(e) }
        schedulePending(now: wall)
        nextWake = min(nextWake, due)
    }

    /// Commits queued changes, then tells the touched nodes their new task set
    /// (write-ahead: a node never runs what the store does not know).
    func flush() {
        // A node's subnet on each network its tasks are now on, in the same
        // commit as the assignment, and in its peer map before its assignment.
        let leased = leaseNetworkSubnets(for: state.touchedNodes)
        let batch = state.takeBatch()
        if !batch.isEmpty {
            do {
                if let replicate { try replicate(batch) } else { try store.commit(batch) }
                commits += 1
            } catch where replicate != nil {
                // Not committed (no quorum, or no longer the leader): this
                // core's memory is ahead of the cluster's; it is dropped.
                log.error("cannot commit through Raft: \(error)")
                replicationFailed?()
                return
            } catch {
                // The in-memory state is ahead of the disk; the next commit retries the same rows.
                log.error("cannot write the store: \(error)")
                state.batch = batch
                return
            }
        }
        let touched = state.touchedNodes
        state.touchedNodes = []
        if leased { sendPeerMaps() }
        for node in touched.sorted() { sendAssignment(node) }
        sendPeerMaps()
        sendDeviceRequests()
    }

    public func takeOutgoing() -> [Outgoing] {
        let o = outgoing
        outgoing = []
        return o
    }

    func send(_ connection: Int, _ line: [UInt8]) { outgoing.append(.send(connection: connection, line: line)) }

    func sendAssignment(_ node: String) {
        guard let conn = dispatcher.nodes[node]?.connection else { return }
        generations[node, default: 0] += 1
        let tasks = assignment(for: node)
        sendSecretData(node, connection: conn, tasks: tasks)
        let msg = AssignMessage(generation: generations[node] ?? 0, tasks: tasks)
        send(conn, WireEncoder.request(MessageType.assign, id: nil, msg))
    }

    /// Every task a node holds: the live ones to run, the rest to stop and keep for their logs.
    public func assignment(for node: String) -> [Assignment] {
        // A task created for the node but not placed yet (a global service's) is not the node's to run.
        state.tasks(onNode: node).filter { $0.state != .pending }.sorted { ($0.serviceName, $0.slot, $0.created) < ($1.serviceName, $1.slot, $1.created) }.map {
            Assignment(taskID: $0.id, serviceID: $0.serviceID, name: $0.name, slot: $0.slot, version: $0.version, spec: $0.spec,
                       desired: $0.isLive ? .running : .shutdown, state: $0.state)
        }
    }

    // MARK: events

    func record(_ e: ClusterEvent) {
        events.append(e)
        state.batch.events.append(e)
        if events.count > Store.eventCapacity { events.removeFirst(events.count - Store.eventCapacity) }
        for f in followers.sorted() { send(f, WireEncoder.request(MessageType.event, id: nil, e)) }
    }

    // MARK: identity

    /// Maps a verified client certificate to a peer: its role, and for nodes,
    /// that it is neither revoked nor issued to a removed node.
    public func authenticate(_ cert: Certificate?) -> Result<PeerIdentity, ClusterError> {
        guard let cert else { return .success(.anonymous) }
        let serial = cert.serial
        guard let record = state.certs[serial] else { return .failure(.security("certificate \(serial) was not issued by this coordinator")) }
        if record.revoked { return .failure(.security("certificate \(serial) (\(record.subject)) is revoked")) }
        guard cert.organization == "hako-cluster-\(clusterID)" else { return .failure(.security("certificate of another cluster")) }
        switch cert.role {
        case PKIRole.admin.rawValue: return .success(.admin)
        case PKIRole.coordinator.rawValue: return .success(.coordinator)
        case PKIRole.node.rawValue:
            guard state.nodes[cert.commonName] != nil else { return .failure(.security("node \(cert.commonName) was removed")) }
            return .success(.node(cert.commonName))
        default: return .failure(.security("certificate role \(cert.role) cannot connect"))
        }
    }

    /// Routes one message; the reply line, or nil (no reply, or one that comes later).
    public func handle(_ env: Envelope, from peer: PeerIdentity, connection: Int, address: String) -> [UInt8]? {
        if env.type == MessageType.reply || env.type == MessageType.error {
            if case .node(let n) = peer { agentReplied(env, node: n) }
            return nil
        }
        do {
            switch peer {
            case .anonymous:
                if env.type == MessageType.renewExpired {
                    return reply(env, try renewExpired(try env.body(RenewExpiredRequest.self), address: address))
                }
                if env.type == MessageType.coordinatorJoin {
                    return reply(env, try joinCoordinator(try env.body(CoordinatorJoinRequest.self), address: address))
                }
                guard env.type == MessageType.join else {
                    throw WireError(.unauthorized, "\(env.type): a client certificate is required (only join and renew.expired work without one)")
                }
                return reply(env, try join(try env.body(JoinRequest.self), address: address))
            case .node(let node):
                return try handleAgent(env, node: node, connection: connection, address: address)
            case .admin:
                return try handleAdmin(env, connection: connection)
            case .coordinator:
                guard env.type == MessageType.coordinatorRotation else {
                    throw WireError(.unauthorized, "\(env.type): not a message between coordinators")
                }
                return reply(env, try coordinatorRotation(try env.body(CoordinatorRotationRequest.self)))
            }
        } catch {
            let e = WireError(error)
            if e.code == .internalError { log.error("\(env.type) from \(address): \(e.message)") }
            return env.id == nil ? nil : WireEncoder.error(to: env.id, e)
        }
    }

    func reply<B: Encodable>(_ env: Envelope, _ body: B) -> [UInt8]? {
        guard let id = env.id else { return nil }
        return WireEncoder.reply(to: id, body)
    }

    /// The store's page cache, handed back once idle (the state is in memory).
    func releaseStoreCache() { store.releaseCache() }

    /// After a burst of connections: the per-connection tables at their present size.
    func compact() {
        followers = Set(followers.map { $0 })
        refusedJoins = refusedJoins.filter { clock.monotonic() - ($0.value.last ?? 0) < CoordinatorCore.refusedJoinWindow }
    }

    public func connectionClosed(_ connection: Int, peer: PeerIdentity) {
        followers.remove(connection)
        if case .node(let n) = peer { dispatcher.close(n, connection: connection, now: clock.monotonic()) }
        for (k, p) in pendingLogs where p.admin == connection { pendingLogs[k] = nil }
    }
}
