import HakoImage
import HakoNetwork
import HakoSystem

/// When a task that ended is replaced by a new one (the service's restart
/// policy; the container's own monitor restarts it first, per `restart`).
public enum RestartCondition: String, Codable, Sendable {
    case any
    case onFailure = "on-failure"
    case none
}

/// Swarm's service modes: a number of replicas, or one task on every
/// eligible node; as jobs, tasks that run to completion (one that exits 0 is
/// never replaced; one that fails is, per the restart condition).
public enum ServiceMode: String, Codable, Sendable {
    case replicated
    case global
    case replicatedJob = "replicated-job"
    case globalJob = "global-job"

    /// One task per eligible node.
    public var isGlobal: Bool { self == .global || self == .globalJob }
    public var isJob: Bool { self == .replicatedJob || self == .globalJob }
}

/// What a service is: the desired state an admin writes.
public struct ServiceSpec: Codable, Sendable, Equatable {
    public var name: String
    public var image: String
    /// Arguments after the image; nil: the image's default command.
    public var command: [String]?
    /// nil: the image's entrypoint; "": none.
    public var entrypoint: String?
    public var env: [String]
    public var workdir: String?
    public var user: String?
    /// Labels on the service's containers (`--container-label`).
    public var labels: [String: String]
    /// Labels of the service itself (`--label`; a stack's namespace label).
    public var serviceLabels: [String: String]
    public var replicas: Int
    /// What each task reserves on its node; the scheduler never overcommits it.
    public var reservations: Resources
    /// Each task's cgroup limits (CPUs in thousandths, memory in bytes); 0: none.
    public var limits: Resources
    /// Ports published on the node that runs a task (Docker's -p syntax:
    /// "8080:80", "80" for a port the node picks, "/udp"). A fixed host port
    /// keeps two tasks off one node.
    public var ports: [String]
    /// Ports of the routing mesh ("8080:80[/udp]"): every node answers the
    /// published port and forwards round-robin to the running tasks' target
    /// port, wherever they run (across the overlay).
    public var ingress: [String]
    /// "node.labels.zone==a", "node.platform.arch!=arm", "node.hostname==pi3".
    public var constraints: [String]
    /// Platforms the image exists for ("linux/arm64"); empty: any.
    public var platforms: [String]
    /// The monitor's restart policy for the container (Docker's syntax).
    public var restart: String
    /// When a task that ended is replaced.
    public var restartCondition: RestartCondition
    /// Replacements per slot before giving up; 0: no limit.
    public var restartMaxAttempts: Int
    /// Seconds between a task's end and its replacement.
    public var restartDelay: Double
    /// Seconds back from a slot's latest failure in which failures count
    /// against `restartMaxAttempts` (Swarm's restart window); 0: every failure counts.
    public var restartWindow: Double
    /// How an update replaces the tasks, and how a rollback does (Swarm's
    /// `UpdateConfig` and `RollbackConfig`; `Model+Rollout.swift`).
    public var update: UpdateConfig
    public var rollback: UpdateConfig
    /// "cluster" (the node's bridge on its leased subnet: an address unique
    /// in the cluster), "host" or "none".
    public var network: String
    /// The cluster networks it is on (`--network NAME`, Model+Network.swift),
    /// each with its aliases; empty: the cluster network alone.
    public var networks: [NetworkAttachment]
    public var stopSignal: String?
    public var stopTimeout: Int?
    /// The tasks' health check (`--health-*`, merged over the image's on each
    /// node); nil: the image's. An unhealthy task is replaced, and the mesh
    /// and service names leave out tasks not (yet) healthy.
    public var healthCheck: HealthCheck?
    /// Swarm's placement preferences ("spread=node.labels.rack"): the tasks
    /// spread evenly over the attribute's values, the first preference first.
    public var placementPreferences: [String]
    /// Tasks of the service one node runs at most; 0: no limit.
    public var maxReplicasPerNode: Int
    /// Replicated (`replicas` tasks) or global (one on every eligible node; `replicas` unused).
    public var mode: ServiceMode
    /// Secrets its tasks get as files (on a tmpfs, at /run/secrets/<target>); Model+Secret.swift.
    public var secrets: [SecretReference]
    /// Configs its tasks get as files (at their target, default /<name>).
    public var configs: [ConfigReference]
    /// Mounts, devices, hostname, DNS, sysctls, capabilities and the other container options.
    public var container: ServiceContainerOptions

    public init(name: String, image: String) {
        self.name = name
        self.image = image
        command = nil
        entrypoint = nil
        env = []
        workdir = nil
        user = nil
        labels = [:]
        serviceLabels = [:]
        replicas = 1
        reservations = .zero
        limits = .zero
        ports = []
        ingress = []
        constraints = []
        platforms = []
        restart = "on-failure:3"
        restartCondition = .any
        restartMaxAttempts = 0
        restartDelay = 5
        restartWindow = 0
        update = UpdateConfig()
        rollback = UpdateConfig()
        network = ServiceSpec.clusterNetwork
        networks = []
        stopSignal = nil
        stopTimeout = nil
        healthCheck = nil
        placementPreferences = []
        maxReplicasPerNode = 0
        mode = .replicated
        secrets = []
        configs = []
        container = ServiceContainerOptions()
    }

    enum CodingKeys: String, CodingKey {
        case name, image, command, entrypoint, env, workdir, user, labels, replicas, reservations, limits, ports, ingress, constraints, platforms
        case restart, restartCondition, restartMaxAttempts, restartDelay, restartWindow, network, stopSignal, stopTimeout
        case placementPreferences, maxReplicasPerNode, mode, healthCheck, serviceLabels, container
        case update, rollback
        case secrets, configs, networks
    }

    /// Keys of rows written before a field was replaced.
    enum LegacyKeys: String, CodingKey {
        /// Before `update`: the parallelism alone.
        case updateParallelism
    }

    /// Every field but `name` and `image` may be left out and takes its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), image: try c.decode(String.self, forKey: .image))
        command = try c.decodeIfPresent([String].self, forKey: .command)
        entrypoint = try c.decodeIfPresent(String.self, forKey: .entrypoint)
        env = try c.decodeIfPresent([String].self, forKey: .env) ?? env
        workdir = try c.decodeIfPresent(String.self, forKey: .workdir)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? labels
        replicas = try c.decodeIfPresent(Int.self, forKey: .replicas) ?? replicas
        reservations = try c.decodeIfPresent(Resources.self, forKey: .reservations) ?? reservations
        limits = try c.decodeIfPresent(Resources.self, forKey: .limits) ?? limits
        ports = try c.decodeIfPresent([String].self, forKey: .ports) ?? ports
        ingress = try c.decodeIfPresent([String].self, forKey: .ingress) ?? ingress
        constraints = try c.decodeIfPresent([String].self, forKey: .constraints) ?? constraints
        platforms = try c.decodeIfPresent([String].self, forKey: .platforms) ?? platforms
        restart = try c.decodeIfPresent(String.self, forKey: .restart) ?? restart
        restartCondition = try c.decodeIfPresent(RestartCondition.self, forKey: .restartCondition) ?? restartCondition
        restartMaxAttempts = try c.decodeIfPresent(Int.self, forKey: .restartMaxAttempts) ?? restartMaxAttempts
        restartDelay = try c.decodeIfPresent(Double.self, forKey: .restartDelay) ?? restartDelay
        restartWindow = try c.decodeIfPresent(Double.self, forKey: .restartWindow) ?? restartWindow
        if let u = try c.decodeIfPresent(UpdateConfig.self, forKey: .update) {
            update = u
        } else if let p = try decoder.container(keyedBy: LegacyKeys.self).decodeIfPresent(Int.self, forKey: .updateParallelism) {
            // A row written before the update config: its parallelism, and the start-first order it rolled with.
            update.parallelism = p
            update.order = .startFirst
        }
        rollback = try c.decodeIfPresent(UpdateConfig.self, forKey: .rollback) ?? rollback
        network = try c.decodeIfPresent(String.self, forKey: .network) ?? network
        networks = try c.decodeIfPresent([NetworkAttachment].self, forKey: .networks) ?? networks
        stopSignal = try c.decodeIfPresent(String.self, forKey: .stopSignal)
        stopTimeout = try c.decodeIfPresent(Int.self, forKey: .stopTimeout)
        healthCheck = try c.decodeIfPresent(HealthCheck.self, forKey: .healthCheck)
        placementPreferences = try c.decodeIfPresent([String].self, forKey: .placementPreferences) ?? placementPreferences
        maxReplicasPerNode = try c.decodeIfPresent(Int.self, forKey: .maxReplicasPerNode) ?? maxReplicasPerNode
        mode = try c.decodeIfPresent(ServiceMode.self, forKey: .mode) ?? mode
        secrets = try c.decodeIfPresent([SecretReference].self, forKey: .secrets) ?? secrets
        configs = try c.decodeIfPresent([ConfigReference].self, forKey: .configs) ?? configs
        serviceLabels = try c.decodeIfPresent([String: String].self, forKey: .serviceLabels) ?? serviceLabels
        container = try c.decodeIfPresent(ServiceContainerOptions.self, forKey: .container) ?? container
    }

    public static let maxReplicas = 10_000
    /// The network every node builds on its leased subnet.
    public static let clusterNetwork = "cluster"

    /// Refuses a spec no node could run, with the field and the reason.
    public func validate() throws(ClusterError) {
        guard Identifiers.isValidName(name) else {
            throw .invalid("invalid service name \"\(name)\": 1–63 letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        guard !image.isEmpty, !image.contains(where: { $0 == " " || $0 == "\n" }) else { throw .invalid("invalid image \"\(image)\"") }
        guard (0...ServiceSpec.maxReplicas).contains(replicas) else { throw .invalid("replicas must be between 0 and \(ServiceSpec.maxReplicas)") }
        guard reservations.cpuMillis >= 0, reservations.memory >= 0 else { throw .invalid("reservations cannot be negative") }
        for c in constraints { _ = try Constraint(parsing: c) }
        for p in placementPreferences { _ = try PlacementPreference(parsing: p) }
        guard maxReplicasPerNode >= 0 else { throw .invalid("max replicas per node cannot be negative") }
        if mode.isGlobal && (maxReplicasPerNode > 0 || !placementPreferences.isEmpty) {
            throw .invalid("placement preferences and max replicas per node are for replicated services (a global one runs one task per node)")
        }
        for p in platforms where (try? PlatformSpec(parsing: p)) == nil { throw .invalid("invalid platform \"\(p)\" (e.g. linux/arm64, linux/arm/v7)") }
        do { _ = try RestartPolicyText.check(restart) } catch { throw .invalid(error.description) }
        guard restartMaxAttempts >= 0 else { throw .invalid("restart max attempts cannot be negative") }
        guard restartDelay >= 0, restartDelay <= 86400 else { throw .invalid("restart delay must be between 0 and 24h") }
        guard restartWindow >= 0, restartWindow <= 30 * 86400 else { throw .invalid("restart window must be between 0 and 30 days") }
        try update.validate("update")
        try rollback.validate("rollback")
        guard [ServiceSpec.clusterNetwork, "host", "none"].contains(network) else {
            throw .invalid("invalid network \"\(network)\": cluster, host or none")
        }
        try validateNetworks()
        guard limits.cpuMillis >= 0, limits.memory >= 0 else { throw .invalid("limits cannot be negative") }
        if limits.memory > 0 && limits.memory < 6 << 20 { throw .invalid("the memory limit must be at least 6 MiB") }
        if limits.memory > 0 && reservations.memory > limits.memory { throw .invalid("the memory reservation exceeds the memory limit") }
        if limits.cpuMillis > 0 && reservations.cpuMillis > limits.cpuMillis { throw .invalid("the CPU reservation exceeds the CPU limit") }
        if !(ports.isEmpty && ingress.isEmpty) && network != ServiceSpec.clusterNetwork {
            throw .invalid("published ports need the cluster network (--network \(network) has none to publish from)")
        }
        var seen = Set<String>()
        for p in ports {
            let bindings: [PortBinding]
            do { bindings = try PortBinding.parse(p) } catch { throw .invalid("\(error)") }
            for b in bindings where b.hostPort != 0 && !seen.insert("\(b.proto.rawValue)/\(b.hostPort)").inserted {
                throw .invalid("host port \(b.hostPort)/\(b.proto.rawValue) is published twice")
            }
        }
        for p in ingress {
            let bindings: [PortBinding]
            do { bindings = try PortBinding.parse(p) } catch { throw .invalid("\(error)") }
            for b in bindings {
                guard b.hostPort != 0, b.hostIP == nil else { throw .invalid("invalid --ingress \"\(p)\": PUBLISHED:TARGET[/PROTOCOL], every node's addresses") }
                guard seen.insert("\(b.proto.rawValue)/\(b.hostPort)").inserted else {
                    throw .invalid("host port \(b.hostPort)/\(b.proto.rawValue) is published twice")
                }
            }
        }
        for e in env where e.isEmpty || e.hasPrefix("=") { throw .invalid("invalid environment variable \"\(e)\"") }
        for e in env { _ = try TaskTemplate.sample.render(e, what: "--env") }
        try container.validate()
        if let s = stopSignal, Signals.parse(s) == nil { throw .invalid("invalid stop signal \"\(s)\"") }
        if let t = stopTimeout, t < 0 { throw .invalid("stop timeout cannot be negative") }
        if let h = healthCheck {
            do { try h.validate() } catch { throw .invalid("invalid health check: \(error.description)") }
        }
        try validateFiles()
    }

    /// Fixed host ports a task holds on its node ("tcp/8080"); ports the node picks are not among them.
    public var hostPorts: [String] {
        ports.flatMap { (try? PortBinding.parse($0)) ?? [] }.filter { $0.hostPort != 0 }.map { "\($0.proto.rawValue)/\($0.hostPort)" }
    }

    /// Whether a template of the tasks reads the service's labels (then a label change means new tasks).
    var usesServiceLabels: Bool {
        (env + [container.hostname ?? ""]).contains { $0.contains(".Service.Labels") }
    }

    /// The routing mesh's ports: (protocol, published, target).
    public var ingressBindings: [PortBinding] { ingress.flatMap { (try? PortBinding.parse($0)) ?? [] } }

    /// Whether a change from `old` to this spec needs new tasks (anything but
    /// the replica count and how updates and rollbacks proceed).
    public func needsNewTasks(comparedTo old: ServiceSpec) -> Bool {
        var a = self, b = old
        a.replicas = 0
        b.replicas = 0
        a.update = b.update
        a.rollback = b.rollback
        // Service labels are the service's own, not its containers': a change keeps the tasks, unless a template reads them.
        a.serviceLabels = [:]
        b.serviceLabels = [:]
        return a != b || (usesServiceLabels && serviceLabels != old.serviceLabels)
    }
}

/// Docker's restart policy syntax, checked without the runtime.
enum RestartPolicyText {
    static func check(_ s: String) throws(ClusterError) -> String {
        let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
        switch parts.first ?? "" {
        case "no", "always", "unless-stopped":
            if parts.count == 1 { return s }
        case "on-failure":
            if parts.count == 1 || UInt32(parts[1]) != nil { return s }
        default: break
        }
        throw .invalid("invalid restart policy \"\(s)\" (no, on-failure[:N], always or unless-stopped)")
    }
}

/// A service as stored: its spec and its version (bumped by every update that needs new tasks).
public struct ServiceRecord: Codable, Sendable, Equatable {
    public var id: String
    public var spec: ServiceSpec
    public var version: Int
    public var created: Double
    public var updated: Double
    /// The spec before the last change (Swarm's `PreviousSpec`): what a rollback restores.
    public var previousSpec: ServiceSpec? = nil
    /// The last update or rollback; nil: none since the service was created.
    public var updateStatus: UpdateStatus? = nil

    public init(id: String, spec: ServiceSpec, version: Int, created: Double, updated: Double) {
        self.id = id
        self.spec = spec
        self.version = version
        self.created = created
        self.updated = updated
    }
}

/// A placement constraint: `node.<attribute> == value` or `!=`.
public struct Constraint: Sendable, Hashable, CustomStringConvertible {
    /// A node attribute, as constraints and placement preferences name it.
    public enum Key: Sendable, Hashable {
        case label(String)
        case id, hostname, name, os, arch

        static let attributes = "node.labels.<key>, node.id, node.hostname, node.name, node.platform.os, node.platform.arch"

        init?(attribute: String) {
            switch attribute {
            case "node.id": self = .id
            case "node.hostname": self = .hostname
            case "node.name": self = .name
            case "node.platform.os": self = .os
            case "node.platform.arch": self = .arch
            default:
                guard attribute.hasPrefix("node.labels."), attribute.count > "node.labels.".count else { return nil }
                self = .label(String(attribute.dropFirst("node.labels.".count)))
            }
        }

        /// The node's value of the attribute; nil: a label it does not have.
        public func value(of n: NodeRecord) -> String? {
            switch self {
            case .label(let k): return n.labels[k]
            case .id: return n.id
            case .hostname: return n.hostname
            case .name: return n.name
            case .os: return n.platform.os
            case .arch: return [n.platform.architecture, n.platform.variant].compactMap { $0 }.joined(separator: "/")
            }
        }
    }
    public var key: Key
    public var equal: Bool
    public var value: String
    public var text: String

    public init(parsing s: String) throws(ClusterError) {
        let op: String
        if s.contains("!=") { op = "!=" } else if s.contains("==") { op = "==" } else {
            throw .invalid("invalid constraint \"\(s)\": expected node.<attribute>==value or !=")
        }
        let sides = s.split(separatorString: op)
        guard sides.count == 2 else { throw .invalid("invalid constraint \"\(s)\"") }
        let lhs = sides[0].trimmed, rhs = sides[1].trimmed
        guard !rhs.isEmpty else { throw .invalid("invalid constraint \"\(s)\": no value") }
        guard let k = Key(attribute: lhs) else {
            throw .invalid("invalid constraint \"\(s)\": the attribute is one of \(Key.attributes)")
        }
        key = k
        equal = op == "=="
        value = rhs
        text = "\(lhs)\(op)\(rhs)"
    }

    public var description: String { text }

    /// Swarm's semantics: values compare without regard to case, and a
    /// missing label fails `==` and passes `!=`.
    public func matches(_ n: NodeRecord) -> Bool {
        if key == .arch, let want = try? PlatformSpec(parsing: "linux/" + value) {
            // Docker's words (uname's: x86_64, aarch64, armv7l) and OCI's
            // (amd64, arm64, arm/v7) alike; a bare architecture ("arm")
            // matches every variant of it (every 32-bit ARM node).
            let anyVariant = !value.contains("/") && want.architecture == value.lowercased()
            let hit = want.architecture == n.platform.architecture && (anyVariant || want.variant == n.platform.variant)
            return hit == equal
        }
        guard let a = key.value(of: n) else { return !equal }
        return (a.lowercased() == value.lowercased()) == equal
    }
}

/// Swarm's placement preference: `spread=<node attribute>`. Nodes without
/// the attribute (a label they lack) form one group of their own.
public struct PlacementPreference: Sendable, Hashable, CustomStringConvertible {
    public var spread: Constraint.Key
    public var text: String

    public init(parsing s: String) throws(ClusterError) {
        let parts = s.split(separator: "=", maxSplits: 1).map { String($0).trimmed }
        guard parts.count == 2, parts[0] == "spread" else {
            throw .invalid("invalid placement preference \"\(s)\": spread=<node attribute> (e.g. spread=node.labels.rack)")
        }
        guard let k = Constraint.Key(attribute: parts[1]) else {
            throw .invalid("invalid placement preference \"\(s)\": the attribute is one of \(Constraint.Key.attributes)")
        }
        spread = k
        text = "spread=\(parts[1])"
    }

    public var description: String { text }
}

extension String {
    func split(separatorString sep: String) -> [String] {
        var out: [String] = []
        var rest = Substring(self)
        while let r = rest.firstRange(of: sep) {
            out.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        out.append(String(rest))
        return out
    }
}
