import HakoImage
import HakoSystem

/// CPU and memory: what a node offers or a task reserves.
public struct Resources: Codable, Sendable, Hashable {
    /// Thousandths of a CPU.
    public var cpuMillis: Int64
    public var memory: Int64

    public init(cpuMillis: Int64 = 0, memory: Int64 = 0) {
        self.cpuMillis = cpuMillis
        self.memory = memory
    }

    public static let zero = Resources()
    public var isZero: Bool { cpuMillis == 0 && memory == 0 }
}

public enum NodeAvailability: String, Codable, Sendable {
    /// Takes new tasks.
    case active
    /// Takes none, and keeps the tasks it runs.
    case pause
    /// Takes none, and its tasks move elsewhere.
    case drain
}

/// What the coordinator knows of a node: joined once, kept in the store.
public struct NodeRecord: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var hostname: String
    public var platform: PlatformSpec
    /// The labels constraints see: the agent's (its config's `labels`) with
    /// the admin's changes (`node update --label-add/--label-rm`) over them.
    public var labels: [String: String]
    /// The labels the agent last reported; nil: the same as `labels` (a node
    /// stored before labels could be changed by an admin). What differs from
    /// `labels` is the admin's, and stays when the agent reports again.
    public var agentLabels: [String: String]?
    public var capacity: Resources
    public var availability: NodeAvailability
    /// The node's container subnet ("10.88.3.0/24"), leased from the cluster CIDR.
    public var subnet: String
    /// The underlay address the agent last connected from.
    public var address: String
    public var agentVersion: String
    /// Seconds since 1970.
    public var created: Double
    public var updated: Double
    /// The host devices the agent last reported (at hello and in
    /// `devices.report`: those of its agent.toml `devices` and those the
    /// services name that exist on it): what `--device` services are placed
    /// by. Not a store column: every agent says hello again to a coordinator
    /// that starts or becomes leader, and a node not in session runs nothing new.
    public var devices: [String]? = nil
    /// The agent opted out of the overlay (its hello's `overlay` false).
    /// Memory only, as `devices`.
    public var overlayOptOut: Bool? = nil

    /// Whether the node reported the host device `path`.
    public func has(device path: String) -> Bool { devices?.contains(path) ?? false }

    /// The IPv4 address the overlay reaches this node at: the host of the
    /// address it connected from, nil for loopback (an agent beside the
    /// coordinator has no underlay address to give its peers) and for
    /// anything but IPv4, and for a node that opted out. A node without one
    /// stays out of the overlay and cannot run tasks on cluster networks.
    public var underlayHost: String? { overlayOptOut == true ? nil : NodeRecord.underlayHost(of: address) }

    /// "10.0.0.5:41234" or "10.0.0.5" → "10.0.0.5"; nil for loopback and anything but IPv4.
    public static func underlayHost(of address: String) -> String? {
        guard let e = try? Endpoint(parsing: address, defaultPort: 0) else { return nil }
        let parts = e.host.split(separator: ".")
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }), parts[0] != "127" else { return nil }
        return e.host
    }

    public init(id: String, name: String, hostname: String, platform: PlatformSpec, labels: [String: String], capacity: Resources,
                availability: NodeAvailability, subnet: String, address: String, agentVersion: String, created: Double, updated: Double,
                agentLabels: [String: String]? = nil) {
        self.agentLabels = agentLabels
        self.id = id
        self.name = name
        self.hostname = hostname
        self.platform = platform
        self.labels = labels
        self.capacity = capacity
        self.availability = availability
        self.subnet = subnet
        self.address = address
        self.agentVersion = agentVersion
        self.created = created
        self.updated = updated
    }

    /// The admin's changes to the agent's labels: keys set to another value
    /// (or added), and agent keys removed.
    public var labelChanges: (set: [String: String], removed: Set<String>) {
        let agent = agentLabels ?? labels
        return (labels.filter { agent[$0.key] != $0.value }, Set(agent.keys.filter { labels[$0] == nil }))
    }

    /// The agent reports its labels (at every hello): they replace the
    /// agent's previous ones, and the admin's changes stay over them.
    public mutating func takeAgentLabels(_ reported: [String: String]) {
        let changes = labelChanges
        var out = reported
        for k in changes.removed { out[k] = nil }
        out.merge(changes.set) { _, admin in admin }
        labels = out
        agentLabels = reported
    }

    /// `node update --label-add k=v --label-rm k`, as Docker's: removing a
    /// label the node does not have is an error (nothing changes then).
    public mutating func changeLabels(add: [String: String], remove: [String]) throws(ClusterError) {
        // Added first, then removed, as `docker node update` applies them.
        var out = labels.merging(add) { _, new in new }
        for k in remove {
            guard out[k] != nil else { throw .invalid("node \(name) has no label \"\(k)\"") }
            out[k] = nil
        }
        if agentLabels == nil { agentLabels = labels }
        labels = out
    }
}

/// A node's liveness as the dispatcher sees it: in memory only.
public enum NodeStatus: String, Codable, Sendable {
    /// No session since the coordinator started (within the grace period).
    case unknown
    case ready
    /// Heartbeats missed, still within the grace period: gets no new tasks.
    case suspect
    /// Silent past the grace period: its tasks are placed elsewhere.
    case down
}

/// A node's load, as each heartbeat reports it.
public struct NodeLoad: Codable, Sendable, Equatable {
    /// Share of the node's CPU time busy since the last heartbeat (0…1).
    public var cpu: Double
    /// 1-minute load average.
    public var load1: Double
    public var memoryTotal: Int64
    public var memoryAvailable: Int64
    /// Containers running on the node (all of them, not only the cluster's).
    public var containers: Int

    public init(cpu: Double = 0, load1: Double = 0, memoryTotal: Int64 = 0, memoryAvailable: Int64 = 0, containers: Int = 0) {
        self.cpu = cpu
        self.load1 = load1
        self.memoryTotal = memoryTotal
        self.memoryAvailable = memoryAvailable
        self.containers = containers
    }

    /// Share of memory in use (0…1); 0 when unknown.
    public var memoryUsed: Double {
        memoryTotal > 0 ? min(1, max(0, 1 - Double(memoryAvailable) / Double(memoryTotal))) : 0
    }
}
