import HakoImage

/// Message types of the line protocol (docs/protocol.md has one section each).
public enum MessageType {
    // agent → coordinator
    public static let join = "join"
    public static let hello = "hello"
    public static let heartbeat = "heartbeat"
    public static let taskStatus = "task.status"
    public static let renew = "renew"
    public static let renewExpired = "renew.expired"
    // coordinator → agent
    public static let assign = "assign"
    public static let logs = "logs"
    /// The roots to trust changed (a CA rotation began or ended); a node whose
    /// certificate the first root did not sign renews at once.
    public static let caUpdate = "ca.update"
    // admin CLI → coordinator
    public static let tokenCreate = "token.create"
    public static let nodeList = "node.ls"
    public static let nodeInspect = "node.inspect"
    public static let nodeUpdate = "node.update"
    public static let nodeRemove = "node.rm"
    public static let nodePs = "node.ps"
    public static let serviceCreate = "service.create"
    public static let serviceList = "service.ls"
    public static let serviceInspect = "service.inspect"
    public static let serviceScale = "service.scale"
    public static let serviceUpdate = "service.update"
    public static let serviceRollback = "service.rollback"
    public static let serviceRemove = "service.rm"
    public static let servicePs = "service.ps"
    public static let serviceLogs = "service.logs"
    public static let events = "events"
    public static let credentialsRenew = "credentials.renew"
    public static let caRotate = "ca.rotate"
    public static let caStatus = "ca.status"
    /// Which coordinator leads, and every coordinator's address (any peer, any coordinator).
    public static let coordinators = "coordinators"
    public static let coordinatorRemove = "coordinator.rm"
    /// A coordinator joining: without a client certificate, a coordinator token and a certificate request.
    public static let coordinatorJoin = "coordinator.join"
    /// Then over mutual TLS with the certificate it got: the CA and the voters; then its addition as a voter.
    public static let coordinatorSecrets = "coordinator.secrets"
    public static let coordinatorAdd = "coordinator.add"
    public static let coordinatorDemote = "coordinator.demote"
    /// A coordinator's part in a CA rotation (over mutual TLS, to the leader):
    /// it holds the new root and a certificate of it; then it presents that certificate.
    public static let coordinatorRotation = "coordinator.rotation"
    /// A coordinator states what it reads (to the leader, which commits it).
    public static let coordinatorReads = "coordinator.reads"
    /// Secrets and configs (`kind` in the body says which).
    public static let secretCreate = "secret.create"
    public static let secretList = "secret.ls"
    public static let secretInspect = "secret.inspect"
    public static let secretRemove = "secret.rm"
    /// Whether candidate data is a stored secret's (or config's): the answer is only same or different.
    public static let secretCompare = "secret.compare"
    /// Cluster networks.
    public static let networkCreate = "network.create"
    public static let networkList = "network.ls"
    public static let networkInspect = "network.inspect"
    public static let networkRemove = "network.rm"
    // coordinator → agent: a secret's or config's data, before the assignment of a task that uses it
    public static let secretData = "secret.data"
    // coordinator → admin CLI, after an `events` request with follow
    public static let event = "event"
    // replies
    public static let reply = "reply"
    public static let error = "error"
}

// MARK: - agent ↔ coordinator

public struct JoinRequest: Codable, Sendable {
    public var token: String
    /// A PEM certificate signing request for the node's own key (the key never leaves the node).
    public var csr: String
    public var name: String
    public var hostname: String
    public var platform: PlatformSpec
    public var capacity: Resources
    public var labels: [String: String]
    public var agentVersion: String
}

public struct JoinReply: Codable, Sendable {
    public var nodeID: String
    public var certificate: String
    public var ca: String
    public var clusterID: String
    public var subnet: String
}

/// The first message of every session (with the node certificate).
public struct HelloRequest: Codable, Sendable {
    public var name: String
    public var hostname: String
    public var platform: PlatformSpec
    public var capacity: Resources
    public var labels: [String: String]
    public var agentVersion: String
    public var load: NodeLoad
    /// Every cluster task the node has a container for: what it adopts.
    public var tasks: [TaskStatus]
    /// The IPv4 address the other nodes reach this one at (the overlay's
    /// underlay): agent.toml's `advertise_address`, else the node's own
    /// address on its route to the coordinator. Absent (older agents): the
    /// address the session comes from.
    public var advertiseAddress: String? = nil
    /// The host devices the node has of those its config names (agent.toml
    /// `devices`); absent (older agents): none.
    public var devices: [String]? = nil
    /// False: the node opted out of the overlay (agent.toml `overlay =
    /// false`): no tunnels to it, no tasks on cluster networks. Absent
    /// (older agents): in it.
    public var overlay: Bool? = nil
}

public struct HelloReply: Codable, Sendable {
    public var sessionID: String
    public var clusterID: String
    public var clusterCIDR: String
    public var subnet: String
    /// When to send the first heartbeat (the coordinator's period with jitter).
    public var heartbeatMs: Int
}

public struct Heartbeat: Codable, Sendable {
    public var sessionID: String
    public var load: NodeLoad
    /// Task id → state, for every cluster task on the node.
    public var tasks: [String: TaskState]
}

public struct HeartbeatReply: Codable, Sendable {
    /// When to send the next heartbeat.
    public var nextMs: Int
}

/// Transitions, sent as they happen (heartbeats repair a lost one).
public struct TaskStatusReport: Codable, Sendable {
    public var sessionID: String
    public var statuses: [TaskStatus]
}

public struct RenewRequest: Codable, Sendable {
    public var csr: String
}

/// A node whose certificate expired while it was off (no client certificate
/// on the connection): the old certificate, and a request signed with the
/// old certificate's key, which proves the node still holds it.
public struct RenewExpiredRequest: Codable, Sendable {
    public var certificate: String
    public var csr: String
}

public struct RenewReply: Codable, Sendable {
    public var certificate: String
}

/// One task a node must hold: started while `desired` is running, stopped
/// (kept for its logs) when it is shutdown. Tasks not listed are removed.
public struct Assignment: Codable, Sendable, Equatable {
    public var taskID: String
    public var serviceID: String
    public var name: String
    public var slot: Int
    public var version: Int
    public var spec: ServiceSpec
    public var desired: DesiredState
    /// The coordinator's view; a node only starts tasks in `assigned` or `starting`.
    public var state: TaskState
}

/// The whole set of a node's tasks, sent whenever it changes. On the wire
/// each spec appears once (`specs`, keyed `<service id>@<version>`) and the
/// tasks refer to it by `spec`: a hundred replicas cost one spec.
public struct AssignMessage: Codable, Sendable {
    public var generation: Int
    public var tasks: [Assignment]

    public init(generation: Int, tasks: [Assignment]) {
        self.generation = generation
        self.tasks = tasks
    }

    struct WireTask: Codable {
        var taskID: String
        var serviceID: String
        var name: String
        var slot: Int
        var version: Int
        var spec: String
        var desired: DesiredState
        var state: TaskState
    }

    enum CodingKeys: String, CodingKey { case generation, specs, tasks }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        var specs: [String: ServiceSpec] = [:]
        var wire: [WireTask] = []
        for a in tasks {
            let key = "\(a.serviceID)@\(a.version)"
            if specs[key] == nil { specs[key] = a.spec }
            wire.append(WireTask(taskID: a.taskID, serviceID: a.serviceID, name: a.name, slot: a.slot, version: a.version, spec: key,
                                 desired: a.desired, state: a.state))
        }
        try c.encode(generation, forKey: .generation)
        try c.encode(specs, forKey: .specs)
        try c.encode(wire, forKey: .tasks)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        generation = try c.decode(Int.self, forKey: .generation)
        let specs = try c.decode([String: ServiceSpec].self, forKey: .specs)
        tasks = try c.decode([WireTask].self, forKey: .tasks).map { w in
            guard let spec = specs[w.spec] else {
                throw DecodingError.dataCorruptedError(forKey: .tasks, in: c, debugDescription: "task \(w.taskID) names no spec \(w.spec)")
            }
            return Assignment(taskID: w.taskID, serviceID: w.serviceID, name: w.name, slot: w.slot, version: w.version, spec: spec,
                              desired: w.desired, state: w.state)
        }
    }
}

public struct LogsRequest: Codable, Sendable {
    public var taskIDs: [String]
    /// Lines from the end of each task's log; 0: all (bounded by `maxBytes`).
    public var tail: Int
    public var maxBytes: Int
    /// Only lines written at or after `since` and before `until` (seconds since 1970); nil: no bound.
    public var since: Double? = nil
    public var until: Double? = nil
}

public struct LogEntry: Codable, Sendable, Equatable {
    public var taskID: String
    public var time: String
    public var stream: String
    public var text: String
}

public struct LogsReply: Codable, Sendable {
    public var entries: [LogEntry]
    /// Output left out to keep the reply within the line bound.
    public var truncated: Bool
}

// MARK: - admin CLI ↔ coordinator

public struct EmptyBody: Codable, Sendable { public init() {} }

public struct TokenCreateRequest: Codable, Sendable {
    /// Seconds; nil: the coordinator's default (1 h).
    public var ttl: Double?
    /// "node" (nil) or "coordinator" (`hako coordinator --join`).
    public var role: String?
    public init(ttl: Double?, role: String? = nil) {
        self.ttl = ttl
        self.role = role
    }
}

public struct TokenReply: Codable, Sendable {
    public var token: String
    public var expires: Double
}

public struct NodeRef: Codable, Sendable {
    public var node: String
    public init(node: String) { self.node = node }
}

/// `node update`: what is left out stays as it is.
public struct NodeUpdateRequest: Codable, Sendable {
    public var node: String
    public var availability: NodeAvailability?
    public var labelAdd: [String: String]?
    public var labelRemove: [String]?
    public init(node: String, availability: NodeAvailability? = nil, labelAdd: [String: String]? = nil, labelRemove: [String]? = nil) {
        self.node = node
        self.availability = availability
        self.labelAdd = labelAdd
        self.labelRemove = labelRemove
    }
}

/// `node ps`: the node's tasks (with `all`, the ended ones too).
public struct NodePsRequest: Codable, Sendable {
    public var node: String
    public var all: Bool
    public init(node: String, all: Bool) { self.node = node; self.all = all }
}

public struct NodeRemoveRequest: Codable, Sendable {
    public var node: String
    public var force: Bool
    public init(node: String, force: Bool) { self.node = node; self.force = force }
}

public struct NodeView: Codable, Sendable {
    public var id: String
    public var name: String
    public var hostname: String
    public var status: NodeStatus
    public var availability: NodeAvailability
    public var platform: PlatformSpec
    public var labels: [String: String]
    public var capacity: Resources
    public var reserved: Resources
    public var load: NodeLoad?
    public var subnet: String
    public var address: String
    public var agentVersion: String
    /// Tasks wanted running on the node.
    public var tasks: Int
    /// Seconds since the last heartbeat; nil: none since the coordinator started.
    public var lastSeenAgo: Double?
    public var created: Double
    public var certificateExpires: Double?
    /// The host devices the node reported (for `--device` services); nil: none or an older coordinator.
    public var devices: [String]? = nil
}

public struct NodeList: Codable, Sendable { public var nodes: [NodeView] }

public struct ServiceCreateRequest: Codable, Sendable {
    public var spec: ServiceSpec
    public init(spec: ServiceSpec) { self.spec = spec }
}

public struct ServiceRef: Codable, Sendable {
    public var service: String
    public init(service: String) { self.service = service }
}

public struct ServiceScaleRequest: Codable, Sendable {
    public var service: String
    public var replicas: Int
    public init(service: String, replicas: Int) { self.service = service; self.replicas = replicas }
}

public struct ServiceUpdateRequest: Codable, Sendable {
    public var service: String
    public var spec: ServiceSpec
    /// The version the change was made against; a newer one refuses it (two admins at once).
    public var version: Int?
    /// New tasks even when nothing changed (a rolling restart).
    public var force: Bool
    public init(service: String, spec: ServiceSpec, version: Int?, force: Bool = false) {
        self.service = service
        self.spec = spec
        self.version = version
        self.force = force
    }
}

public struct ServiceView: Codable, Sendable {
    public var id: String
    public var name: String
    public var version: Int
    public var spec: ServiceSpec
    /// Tasks running at the current version / all running.
    public var running: Int
    public var runningCurrent: Int
    public var created: Double
    public var updated: Double
    /// "updating 2/5", "paused", "completed", "rollback_started 1/3"…, or "" before the first update.
    public var updateStatus: String
    /// Tasks wanted: the replicas, or a global service's eligible nodes (nil from an older coordinator: the replicas).
    public var desired: Int?
    /// A job's tasks that ran to completion at the current version (nil: not a job).
    public var completed: Int?
    /// The last update or rollback, as `docker service inspect` shows it (nil: none).
    public var rollout: UpdateStatusView? = nil
    /// What `service rollback` would restore (Swarm's `PreviousSpec`).
    public var previousSpec: ServiceSpec? = nil
    /// Tasks no longer wanted that have not ended yet (being stopped), on
    /// nodes that are not down: a task on a down node counts as gone, as in
    /// Swarm (nil from an older coordinator).
    public var stopping: Int? = nil

    enum CodingKeys: String, CodingKey {
        case id, name, version, spec, running, runningCurrent, created, updated, updateStatus, desired, completed, stopping
        case rollout = "UpdateStatus"
        case previousSpec = "PreviousSpec"
    }
}

public struct ServiceList: Codable, Sendable { public var services: [ServiceView] }

public struct ServicePsRequest: Codable, Sendable {
    public var service: String
    /// Also the ended tasks kept as history.
    public var all: Bool
    public init(service: String, all: Bool) { self.service = service; self.all = all }
}

public struct TaskView: Codable, Sendable {
    public var id: String
    public var name: String
    public var slot: Int
    public var version: Int
    public var image: String
    public var nodeID: String?
    public var nodeName: String?
    public var desired: DesiredState
    public var state: TaskState
    public var message: String
    public var exitCode: Int32?
    public var containerID: String?
    public var created: Double
    public var updated: Double
    /// Published on its node: "0.0.0.0:8080->80/tcp".
    public var ports: [String]? = nil
    /// Its address on the cluster network.
    public var address: String? = nil
    /// Its address on each cluster network it is on (network id → address).
    public var networkAddresses: [String: String]? = nil
    /// Why the scheduler chose its node.
    public var placement: String? = nil
    /// Its health check's status (starting, healthy, unhealthy); nil: no check.
    public var health: String? = nil
}

public struct TaskList: Codable, Sendable { public var tasks: [TaskView] }

public struct ServiceLogsRequest: Codable, Sendable {
    /// A service (name, id or id prefix), or one task: its id or id prefix,
    /// its name (`web.2`, a global one's `web.<node id>`: the slot's tasks),
    /// or the name and id as `service logs` prints them (`web.2.<id>`).
    public var service: String
    public var tail: Int
    /// Only lines written at or after `since` and before `until` (seconds since 1970).
    public var since: Double?
    public var until: Double?
    public init(service: String, tail: Int, since: Double? = nil, until: Double? = nil) {
        self.service = service
        self.tail = tail
        self.since = since
        self.until = until
    }
}

public struct ServiceLogEntry: Codable, Sendable {
    public var task: String
    public var node: String
    public var time: String
    public var stream: String
    public var text: String
}

public struct ServiceLogsReply: Codable, Sendable {
    public var entries: [ServiceLogEntry]
    /// Nodes that did not answer (down, or too slow).
    public var missing: [String]
    public var truncated: Bool
}

public struct EventsRequest: Codable, Sendable {
    /// Keep the connection and send each new event.
    public var follow: Bool
    /// Only events at or after this time (seconds since 1970).
    public var since: Double?
    public init(follow: Bool, since: Double?) { self.follow = follow; self.since = since }
}

/// Something that happened in the cluster (kept in memory, the last 1,000).
public struct ClusterEvent: Codable, Sendable, Equatable {
    public var time: Double
    /// node, service, task, token
    public var kind: String
    /// joined, ready, suspect, down, removed, created, scaled, updated, placed, unplaced, running, failed…
    public var action: String
    public var id: String
    public var name: String
    public var message: String
}

public struct EventList: Codable, Sendable { public var events: [ClusterEvent] }

// MARK: - CA rotation

/// coordinator → agent: the roots to trust, the signing one first.
public struct CAUpdate: Codable, Sendable {
    public var bundle: String
}

/// `hako cluster ca rotate`: starts a rotation (or joins the one running) and
/// asks for admin credentials of the new root.
public struct CARotateRequest: Codable, Sendable {
    public var csr: String
}

public struct CARotateReply: Codable, Sendable {
    /// The admin certificate for the request's key, signed by the new root.
    public var certificate: String
    public var status: CAStatus
}

public struct CAStatus: Codable, Sendable, Equatable {
    /// Fingerprint of the root that signs.
    public var fingerprint: String
    /// While a rotation runs: the root being retired, since when, and the
    /// nodes (names) that still hold a certificate of it.
    public var rotating: Bool
    public var previous: String?
    public var started: Double?
    public var pending: [String]
    /// The roots to trust now (PEM, the signing one first).
    public var bundle: String
}

/// `coordinator.rotation`: a coordinator (not the leader) has applied the
/// rotation's first entry — it trusts both roots and holds the new one's key —
/// and made itself `certificate` of the new root; `presenting`: it presents
/// that certificate from now on.
public struct CoordinatorRotationRequest: Codable, Sendable {
    public var raftID: UInt64
    public var certificate: String
    public var presenting: Bool
    public init(raftID: UInt64, certificate: String, presenting: Bool) {
        self.raftID = raftID
        self.certificate = certificate
        self.presenting = presenting
    }
}

public struct CoordinatorRotationReply: Codable, Sendable {
    /// Every node and coordinator trusts the new root: present its certificate.
    public var present: Bool
    /// No rotation runs (any more).
    public var done: Bool
    public init(present: Bool, done: Bool) {
        self.present = present
        self.done = done
    }
}

/// The answer to `coordinators`.
public struct CoordinatorsReply: Codable, Sendable, Equatable {
    public struct Member: Codable, Sendable, Equatable {
        /// The Raft id (0 for a coordinator without Raft).
        public var id: UInt64
        /// Where clients reach it ("" when it has not said yet).
        public var address: String
        public var raftAddress: String
        public init(id: UInt64, address: String, raftAddress: String) {
            self.id = id
            self.address = address
            self.raftAddress = raftAddress
        }
    }
    /// The address clients reach the leader at; nil: no leader (no quorum).
    public var leader: String?
    /// The answering coordinator's own address.
    public var address: String
    /// Every voter.
    public var members: [Member]
    /// The answering coordinator's Raft id, and the leader's (0: none); nil
    /// from an older coordinator. Addresses can repeat (coordinators on one
    /// host that have not told their client ports): ids do not.
    public var id: UInt64?
    public var leaderID: UInt64?
    public init(leader: String?, address: String, members: [Member], id: UInt64? = nil, leaderID: UInt64? = nil) {
        self.leader = leader
        self.address = address
        self.members = members
        self.id = id
        self.leaderID = leaderID
    }
    /// Every coordinator's client address.
    public var coordinators: [String] { members.map(\.address).filter { !$0.isEmpty } }
}

/// `coordinator.rm` and `coordinator.demote`: a coordinator by its address or Raft id.
public struct CoordinatorRef: Codable, Sendable, Equatable {
    public var coordinator: String
    public init(coordinator: String) { self.coordinator = coordinator }
}

public struct CoordinatorJoinRequest: Codable, Sendable {
    public var token: String
    /// A PEM certificate request for the joining coordinator's own key.
    public var csr: String
    /// Names and addresses for its certificate.
    public var sans: [String]
    public init(token: String, csr: String, sans: [String]) {
        self.token = token
        self.csr = csr
        self.sans = sans
    }
}

public struct CoordinatorJoinReply: Codable, Sendable {
    public var certificate: String
    /// Every root the cluster trusts (PEM bundle).
    public var trust: String
    public var clusterID: String
    public var clusterCIDR: String
    public var nodeSubnetPrefix: Int
}

/// `coordinator.secrets`' answer: what a coordinator needs to lead one day.
public struct CoordinatorSecrets: Codable, Sendable {
    public var caCertificate: String
    public var caKey: String
    public var trust: String
    public var members: [CoordinatorsReply.Member]
    /// The key secrets are sealed with in the store (hex; nil from a coordinator older than secrets).
    public var secretsKey: String? = nil
}

public struct CoordinatorAddRequest: Codable, Sendable {
    public var raftID: UInt64
    public var raftAddress: String
    public var address: String
    /// What it reads ("FORMAT SCHEMA"; nil from a hako before the statements).
    public var reads: String?
    public init(raftID: UInt64, raftAddress: String, address: String, reads: String? = nil) {
        self.raftID = raftID
        self.raftAddress = raftAddress
        self.address = address
        self.reads = reads
    }
}

/// `coordinator.reads`: what coordinator `raftID` reads ("FORMAT SCHEMA", `CoordinatorReads`).
public struct CoordinatorReadsStatement: Codable, Sendable {
    public var raftID: UInt64
    public var reads: String
    public init(raftID: UInt64, reads: String) {
        self.raftID = raftID
        self.reads = reads
    }
}
