import HakoSystem

/// A task's observed state, in the order tasks go through them (swarm's).
public enum TaskState: String, Codable, Sendable, CaseIterable {
    /// Created by the orchestrator, waiting for a node (with the reason when none fits).
    case pending
    /// Placed on a node, not yet taken up by its agent.
    case assigned
    /// The agent is creating and starting the container.
    case starting
    case running
    /// Ended with exit code 0.
    case complete
    /// Ended otherwise, after the monitor's own restarts.
    case failed
    /// Stopped because it was no longer wanted.
    case shutdown
    /// The agent could not start it (no such image, bad command…).
    case rejected
    /// Its node went down; it was replaced elsewhere.
    case orphaned

    public var isTerminal: Bool {
        switch self {
        case .complete, .failed, .shutdown, .rejected, .orphaned: return true
        default: return false
        }
    }

    /// Ended by failing (counts toward the restart limit).
    public var isFailure: Bool { self == .failed || self == .rejected }
}

public enum DesiredState: String, Codable, Sendable {
    case running
    case shutdown
}

/// One replica of a service at one version: placed once, never moved.
public struct TaskRecord: Codable, Sendable, Equatable {
    public var id: String
    public var serviceID: String
    public var serviceName: String
    /// 1…replicas: the replica this task fills.
    public var slot: Int
    /// The service version the task runs.
    public var version: Int
    /// Its service's spec at `version` (a Raft log entry carries it once per
    /// service version, not once per task: `SpecOfTask`).
    @SpecOfTask public var spec: ServiceSpec
    public var nodeID: String?
    public var desired: DesiredState
    public var state: TaskState
    /// Why it is pending, or what went wrong.
    public var message: String
    public var containerID: String?
    public var exitCode: Int32?
    public var created: Double
    /// When `state` last changed.
    public var updated: Double
    /// Not scheduled before this time (restart delay); seconds since 1970.
    public var notBefore: Double
    /// Ports its node published ("0.0.0.0:8080->80/tcp"), as its agent last
    /// reported them (stored: a restarted coordinator knows them at once).
    public var ports: [String]? = nil
    /// Its address on the cluster network, as its agent reported it (stored,
    /// as the ports: the service names and the mesh are made of it).
    public var address: String? = nil
    /// Its address on each cluster network it is on (network id → address),
    /// as its agent reported it: the names on each network are made of it.
    public var networkAddresses: [String: String]? = nil
    /// Why the scheduler chose its node (the node's score and the next best).
    public var placement: String? = nil
    /// Its container's health as its agent last reported it (starting,
    /// healthy, unhealthy); nil: no health check. Only healthy tasks (or
    /// tasks without a check) are in the mesh and the service names.
    public var health: String? = nil
    /// Since when it runs healthy, or runs without a check (set by the
    /// orchestrator): an update counts it as updated when healthy, or after
    /// the monitor period without a check; a failure soon after is the update's.
    public var servingSince: Double? = nil

    /// Running, and healthy or without a check: what the mesh and the service names route to.
    public var servesTraffic: Bool { state == .running && desired == .running && (health == nil || health == "healthy") }

    public init(id: String, serviceID: String, serviceName: String, slot: Int, version: Int, spec: ServiceSpec, nodeID: String?,
                desired: DesiredState, state: TaskState, message: String, containerID: String?, exitCode: Int32?,
                created: Double, updated: Double, notBefore: Double, ports: [String]? = nil, address: String? = nil,
                placement: String? = nil) {
        self.placement = placement
        self.ports = ports
        self.address = address
        self.id = id
        self.serviceID = serviceID
        self.serviceName = serviceName
        self.slot = slot
        self.version = version
        self.spec = spec
        self.nodeID = nodeID
        self.desired = desired
        self.state = state
        self.message = message
        self.containerID = containerID
        self.exitCode = exitCode
        self.created = created
        self.updated = updated
        self.notBefore = notBefore
    }

    /// "web.2"; a global service's task (slot 0) is named by its node, as Swarm's: "agent.<node id>".
    public var name: String { slot == 0 ? "\(serviceName).\(nodeID ?? "")" : "\(serviceName).\(slot)" }
    /// Wanted, and not ended: counts toward the replicas.
    public var isLive: Bool { desired == .running && !state.isTerminal }
}

/// `TaskRecord.spec` as it is encoded: whole, except in a Raft log entry
/// (`StoreBatch+Entry.swift`, format 2), which carries each service version's
/// spec once beside the tasks. There the task's spec is null, and decoding the
/// entry fills it in from the entry's specs (`isUnresolved` until then).
@propertyWrapper
public struct SpecOfTask: Sendable, Equatable, Codable {
    public var wrappedValue: ServiceSpec

    public init(wrappedValue: ServiceSpec) { self.wrappedValue = wrappedValue }

    /// Set in an encoder's `userInfo`: the specs travel apart from the tasks.
    public static let apart = CodingUserInfoKey(rawValue: "hako.taskSpecsApart")!
    /// What a null spec decodes to before the entry resolves it (a spec with no name: never valid).
    public static let unresolved = ServiceSpec(name: "", image: "")

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? SpecOfTask.unresolved : try c.decode(ServiceSpec.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if encoder.userInfo[SpecOfTask.apart] as? Bool == true { try c.encodeNil() } else { try c.encode(wrappedValue) }
    }
}

/// What an agent reports about one task.
public struct TaskStatus: Codable, Sendable, Equatable {
    public var taskID: String
    public var state: TaskState
    public var containerID: String?
    public var exitCode: Int32?
    public var message: String
    /// The ports published for it on the node, once it runs.
    public var ports: [String]?
    /// Its address on the cluster network, once it runs.
    public var address: String?
    /// Its address on each cluster network it is on (network id → address), once it runs.
    public var networkAddresses: [String: String]?
    /// Its container's health check status (nil: none, or not known).
    public var health: String?

    public init(taskID: String, state: TaskState, containerID: String? = nil, exitCode: Int32? = nil, message: String = "", ports: [String]? = nil,
                address: String? = nil, networkAddresses: [String: String]? = nil, health: String? = nil) {
        self.health = health
        self.ports = ports
        self.address = address
        self.networkAddresses = networkAddresses
        self.taskID = taskID
        self.state = state
        self.containerID = containerID
        self.exitCode = exitCode
        self.message = message
    }
}
