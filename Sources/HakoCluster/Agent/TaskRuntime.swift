#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoRuntime
import HakoImage
import HakoNetwork
import HakoSystem
import Synchronization

/// A cluster task's container as the node sees it.
public struct ObservedTask: Sendable, Equatable {
    public enum Status: String, Sendable {
        case created, running, restarting, exited, dead
    }
    public var taskID: String
    public var containerID: String
    public var status: Status
    public var exitCode: Int32
    public var restartCount: UInt32
    public var created: Double
    /// Published ports: "0.0.0.0:8080->80/tcp".
    public var ports: [String]
    /// Its address on the cluster network ("10.88.1.2").
    public var address: String?
    /// Its address on each cluster network it is on (network id → "10.96.0.2").
    public var networkAddresses: [String: String]
    /// Its health check's status as the monitor last wrote it (starting,
    /// healthy, unhealthy; kept after the container ends); nil: no check.
    public var health: String?

    public init(taskID: String, containerID: String, status: Status, exitCode: Int32 = 0, restartCount: UInt32 = 0, created: Double = 0,
                ports: [String] = [], address: String? = nil, networkAddresses: [String: String] = [:], health: String? = nil) {
        self.health = health
        self.networkAddresses = networkAddresses
        self.ports = ports
        self.address = address
        self.taskID = taskID
        self.containerID = containerID
        self.status = status
        self.exitCode = exitCode
        self.restartCount = restartCount
        self.created = created
    }
}

/// What the agent needs of the local runtime. The engine implements it; tests fake it.
public protocol TaskRuntime: Sendable {
    /// The containers of cluster tasks on this node, and how many containers run in all.
    func observe() throws -> (tasks: [ObservedTask], running: Int)
    /// Creates and starts the task's container (on the node's network, built
    /// on `subnet`, the node's lease, when the spec asks for the cluster network,
    /// with the overlay's cluster CIDR and MTU `overlay`; and on each cluster
    /// network it names, from `networks`: the node's subnets of them by network
    /// id), with `files` (its secrets and configs, from memory); its id.
    func start(_ a: Assignment, node: String, subnet: String, overlay: ClusterNetworkOptions?, networks: [String: NodeNetwork],
               files: [ContainerFile]) throws -> String
    /// Starts a container created earlier (the agent died between create and start).
    func startExisting(_ containerID: String, files: [ContainerFile]) throws
    func stop(_ containerID: String, timeout: Int?) throws
    func remove(_ containerID: String) throws
    /// The container's log lines (the last `tail`, 0: all) written in [since, until), newest kept within `maxBytes`.
    func logs(_ containerID: String, tail: Int, since: Double?, until: Double?, maxBytes: Int) throws -> (entries: [(time: String, stream: String, text: String)], truncated: Bool)
}

/// Makes a task's image present on the node.
public protocol ImageProvider: Sendable {
    func ensure(_ reference: String) throws
}

/// Images already in the node's store (imported with `hako import`), else
/// pulled from their registry through the engine (engine.json's insecure
/// registries, CAs and `hako login` credentials apply). Tasks of one image
/// starting together pull it once: the first pulls, the others wait for it.
public final class RegistryImages: ImageProvider {
    let engine: Engine
    private let pulling = Mutex<[String: PullGate]>([:])

    public init(engine: Engine) { self.engine = engine }

    final class PullGate: Sendable {
        let done = Mutex(false)
    }

    public func ensure(_ reference: String) throws {
        if (try? engine.images.find(reference)) != nil { return }
        // One pull per reference at a time; the others wait on its lock and then find the image.
        let gate = pulling.withLock { m in
            if let g = m[reference] { return g }
            let g = PullGate()
            m[reference] = g
            return g
        }
        try gate.done.withLock { pulled in
            if pulled, (try? engine.images.find(reference)) != nil { return }
            do {
                _ = try engine.pull(reference)
            } catch {
                throw ClusterError.notFound("image \(reference): \(error)")
            }
            pulled = true
        }
    }
}

/// Labels that tie a container to its task.
public enum TaskLabels {
    public static let task = "hako.cluster.task"
    public static let service = "hako.cluster.service"
    public static let node = "hako.cluster.node"
    public static let slot = "hako.cluster.slot"
}

/// The agent's runtime: the node's own HakoEngine (never the `hako` CLI).
public struct EngineTaskRuntime: TaskRuntime {
    public let engine: Engine
    let images: any ImageProvider
    let network: ClusterNetwork
    /// The agent observes every second: unchanged container files are not decoded again.
    let listCache = ContainerListCache()
    /// Engine network name → cluster network id, for the addresses observed.
    let networkIDs = NetworkIDs()

    public init(engine: Engine, images: (any ImageProvider)? = nil) {
        self.engine = engine
        self.images = images ?? RegistryImages(engine: engine)
        network = ClusterNetwork(engine: engine)
    }

    public func observe() throws -> (tasks: [ObservedTask], running: Int) {
        var out: [ObservedTask] = []
        var running = 0
        for c in try engine.list(cache: listCache) {
            if c.isRunning || c.status == .restarting { running += 1 }
            guard let task = c.config.labels[TaskLabels.task] else { continue }
            let status: ObservedTask.Status
            switch c.status {
            case .created: status = .created
            case .running, .paused: status = .running
            case .restarting: status = .restarting
            case .exited: status = .exited
            case .dead: status = .dead
            }
            // The bindings as resolved at start (a port the node picked), for containers that publish any,
            // the address on the cluster network (for the routing mesh) and those on cluster networks (for their names).
            let networked = status == .running && c.config.networking?.networks.contains { EngineTaskRuntime.isClusterNetwork($0.name) } == true
            let endpoint = networked ? engine.endpoint(c.id) : nil
            let ports = (endpoint?.ports ?? []).map(\.description)
            var address: String?
            var addresses: [String: String] = [:]
            for a in endpoint?.attachments ?? [] {
                if a.networkName == ClusterNetwork.name { address = a.ip.description }
                else if let id = clusterNetworkID(a.networkName) { addresses[id] = a.ip.description }
            }
            out.append(ObservedTask(taskID: task, containerID: c.id, status: status, exitCode: c.exitCode,
                                    restartCount: c.state?.restartCount ?? 0, created: c.config.created.secondsSince1970, ports: ports,
                                    address: address, networkAddresses: addresses, health: c.state?.health?.status))
        }
        return (out, running)
    }

    /// The node's engine networks of the cluster: its own and one per cluster network.
    static func isClusterNetwork(_ engineName: String) -> Bool {
        engineName == ClusterNetwork.name || engineName.hasPrefix(NodeNetwork.engineName(vni: 0).dropLast())
    }

    /// The cluster network id of an engine network of the node (its label), remembered.
    func clusterNetworkID(_ engineName: String) -> String? {
        guard engineName != ClusterNetwork.name, EngineTaskRuntime.isClusterNetwork(engineName) else { return nil }
        if let id = networkIDs.map.withLock({ $0[engineName] }) { return id }
        guard let d = try? engine.findNetwork(engineName), let id = d.labels[ClusterNetwork.idLabel] else { return nil }
        networkIDs.map.withLock { $0[engineName] = id }
        return id
    }

    /// The engine's spec for a task, filled with typed values: Docker swarm's
    /// container name, the task labels. `dns`: the node's DNS responder (its
    /// bridge's gateway) for service names. `hostname`: the node's, for templates.
    /// `first`: the engine network of its first cluster network, for a task
    /// not on the cluster network (the others are connected before it starts).
    public static func containerSpec(_ a: Assignment, node: String, dns: IPv4Address? = nil, first: String? = nil,
                                     hostname: String = AgentConfig.hostname()) throws -> ContainerSpec {
        let s = a.spec
        var o = ContainerSpec(image: s.image)
        o.name = "\(a.name).\(a.taskID.prefix(12))"
        o.process.command = s.command
        o.process.entrypoint = s.entrypoint.map { $0.isEmpty ? [] : [$0] }
        o.process.workingDir = s.workdir
        o.process.user = s.user
        o.labels = s.labels
        o.labels[TaskLabels.task] = a.taskID
        o.labels[TaskLabels.service] = a.serviceID
        o.labels[TaskLabels.node] = node
        o.labels[TaskLabels.slot] = String(a.slot)
        o.restart = try RestartPolicy(parsing: s.restart)
        let platform = Agent.platform
        let template = TaskTemplate(serviceID: a.serviceID, serviceName: s.name, serviceLabels: s.serviceLabels, nodeID: node, nodeHostname: hostname,
                                    os: platform.os, architecture: platform.architecture, taskID: a.taskID, taskName: "\(a.name).\(a.taskID)",
                                    taskSlot: a.slot == 0 ? node : String(a.slot))
        try applyTemplates(s, template, to: &o)
        try applyNetwork(s, dns: dns, first: first, to: &o)
        // A memory reservation is the soft limit (Docker swarm's).
        if s.limits.cpuMillis > 0 { o.resources.nanoCPUs = s.limits.cpuMillis * 1_000_000 }
        if s.limits.memory > 0 { o.resources.memory = s.limits.memory }
        if s.reservations.memory > 0 { o.resources.memoryReservation = s.reservations.memory }
        if let sig = s.stopSignal {
            guard let n = Signals.parse(sig) else { throw HakoError(.invalidArgument("--stop-signal"), "invalid stop signal \"\(sig)\"") }
            o.stopSignal = n
        }
        o.stopTimeout = s.stopTimeout
        o.healthCheck = s.healthCheck
        o.mounts = s.container.mounts.map(\.mountRequest)
        o.isolation.devices = s.container.devices.map(\.deviceMapping)
        applyHardening(s.container, to: &o)
        return o
    }

    /// `--env` values and `--hostname` through Swarm's templates.
    static func applyTemplates(_ s: ServiceSpec, _ t: TaskTemplate, to o: inout ContainerSpec) throws {
        o.process.env = try EnvFile.passThrough(try s.env.map { try t.render($0, what: "--env") })
        o.hostname = try s.container.hostname.map { try t.render($0, what: "--hostname") }
    }

    /// The network, published ports and resolvers: the node's responder for
    /// service names first, then the service's own servers; a task of a stack
    /// also searches the stack's domain, where its services' short names are.
    static func applyNetwork(_ s: ServiceSpec, dns: IPv4Address?, first: String? = nil, to o: inout ContainerSpec) throws {
        let c = s.container
        let servers = try c.dns.map { d in
            guard let a = IPv4Address(d) else { throw HakoError(.invalidArgument("--dns"), "invalid --dns \"\(d)\": not an IPv4 address") }
            return a
        }
        o.networking.dns = servers
        o.networking.dnsSearch = c.dnsSearch
        o.networking.dnsOptions = c.dnsOptions
        switch s.network {
        case ServiceSpec.clusterNetwork:
            o.network = .bridge
            // On the cluster network first (its published ports and the mesh reach it there), else on its first network.
            o.networking.network = s.isOnClusterNetwork ? ClusterNetwork.name : first
            // The coordinator checked the ports' text; this is their one parse on the node.
            o.networking.ports = try s.ports.flatMap { try PortBinding.parse($0) }
            o.networking.dns = (dns.map { [$0] } ?? []) + servers.filter { $0 != dns }
            if let ns = s.stackNamespace { o.networking.dnsSearch.append(ns) }
        case "host": o.network = .host
        default: o.network = .none
        }
    }

    /// Sysctls, capabilities, a read-only root, the init process and the pids limit.
    static func applyHardening(_ c: ServiceContainerOptions, to o: inout ContainerSpec) {
        o.isolation.sysctls = c.sysctls.keys.sorted().map { IsolationConfig.Sysctl(key: $0, value: c.sysctls[$0] ?? "") }
        o.isolation.capAdd = c.capAdd
        o.isolation.capDrop = c.capDrop
        o.isolation.readOnlyRoot = c.readOnly
        o.process.initProcess = c.initProcess
        if c.pidsLimit > 0 { o.resources.pidsLimit = Int64(c.pidsLimit) }
    }

    public func start(_ a: Assignment, node: String, subnet: String, overlay: ClusterNetworkOptions?, networks: [String: NodeNetwork],
                      files: [ContainerFile]) throws -> String {
        // Its cluster networks, in the service's order: the coordinator leased the node's
        // subnet of each and sent it in the peer map before this assignment.
        var joined: [NodeNetwork] = []
        for n in a.spec.networks {
            guard let mine = networks[n.id] else {
                throw ClusterError.notFound("network \(n.target): this node has no subnet of it in the peer map yet")
            }
            joined.append(mine)
        }
        let onCluster = a.spec.isOnClusterNetwork
        if onCluster {
            try network.ensure(subnet: subnet, overlay: overlay)
        }
        for n in joined {
            try network.ensure(n, mtu: overlay?.mtu)
            networkIDs.map.withLock { $0[n.engineName] = n.id }
        }
        try images.ensure(a.spec.image)
        // Its nameserver: the node's responder on its first network's gateway (it answers by the querier's networks).
        let gateway = onCluster ? IPv4Network(subnet)?.defaultGateway : joined.first?.subnet.defaultGateway
        let config = try engine.create(try EngineTaskRuntime.containerSpec(a, node: node, dns: gateway, first: joined.first?.engineName))
        do {
            // One interface per network, all made when it starts, before its init runs.
            let more = onCluster ? joined : Array(joined.dropFirst())
            for n in more {
                try engine.connect(network: n.engineName, container: config.id)
            }
            _ = try engine.start(created: more.isEmpty ? config : try engine.lookup(config.id).config, files: files)
        } catch {
            try? engine.remove(config.id, force: true)
            throw error
        }
        return config.id
    }

    public func startExisting(_ containerID: String, files: [ContainerFile]) throws { try engine.start(containerID, files: files) }

    public func stop(_ containerID: String, timeout: Int?) throws { try engine.stop(containerID, timeout: timeout) }

    public func remove(_ containerID: String) throws { try engine.remove(containerID, force: true) }

    public func logs(_ containerID: String, tail: Int, since: Double?, until: Double?, maxBytes: Int) throws -> (entries: [(time: String, stream: String, text: String)], truncated: Bool) {
        let c = try engine.lookup(containerID)
        var out: [(String, String, String)] = []
        var pending: [Bool: String] = [:]
        func time(_ s: Double?) -> Timestamp? {
            s.map { v in Timestamp(seconds: Int64(v.rounded(.down)), nanoseconds: Int32(((v - v.rounded(.down)) * 1e9).rounded(.down))) }
        }
        LogReader(path: c.paths.log, maxFiles: c.config.logMaxFiles).read(tail: tail > 0 ? tail : nil, since: time(since), until: time(until),
                                                                          follow: false, stillRunning: { false }) { r in
            let text = (pending[r.stderr] ?? "") + String(decoding: r.text, as: UTF8.self)
            if r.endsLine {
                out.append((r.time, r.stderr ? "stderr" : "stdout", text))
                pending[r.stderr] = nil
            } else {
                pending[r.stderr] = text
            }
        }
        // Newest lines win when the reply must be cut.
        var total = 0
        var kept: [(String, String, String)] = []
        for e in out.reversed() {
            total += e.2.utf8.count + e.0.utf8.count + 64
            if total > maxBytes { return (kept.reversed(), true) }
            kept.append(e)
        }
        return (out, false)
    }
}

/// The cluster network ids of the node's engine networks, as learnt.
final class NetworkIDs: Sendable {
    let map = Mutex<[String: String]>([:])
}

extension ServiceMount {
    /// The engine's mount request for it (a named volume is made on first use and kept on the node).
    var mountRequest: MountRequest {
        var m: MountRequest
        switch type {
        case .volume:
            if let s = source {
                m = MountRequest(kind: .volume, source: s, target: target)
            } else {
                m = MountRequest(kind: .volume, source: hexString(randomBytes(32)), target: target)
                m.anonymous = true
            }
        case .bind: m = MountRequest(kind: .bind, source: FS.absolute(source ?? ""), target: target)
        case .tmpfs: m = MountRequest(kind: .tmpfs, source: "", target: target)
        }
        m.readOnly = readOnly
        m.noCopy = noCopy
        m.tmpfsSize = tmpfsSize > 0 ? UInt64(tmpfsSize) : 0
        m.propagation = propagation.flatMap(BindPropagation.init(rawValue:))
        return m
    }
}

extension ServiceDevice {
    /// The engine's device mapping for it.
    var deviceMapping: IsolationConfig.DeviceMapping {
        IsolationConfig.DeviceMapping(host: FS.normalize(host), container: FS.normalize(container), permissions: permissions)
    }
}
