#if canImport(Glibc)
import Glibc
#endif
import HakoNetwork
import HakoSystem

/// `hako agent --config FILE` (config/agent.toml documents each key).
public struct AgentConfig: Sendable {
    /// host:port; after joining, the address the node joined through is remembered.
    public var coordinator: String?
    public var stateDir = "/var/lib/hako/agent"
    /// Shown in `node ls`; default: the host name.
    public var name = ""
    public var labels: [String: String] = [:]
    /// The node's engine: data root, runtime dir, cgroup parent.
    public var root = "/var/lib/hako"
    public var runRoot = "/run/hako"
    public var cgroupParent = "hako"
    /// The cgroup subtree (relative to the cgroup root) whose CPU and memory
    /// use is the node's load for the scheduler; empty: the whole machine.
    public var loadCgroup = ""
    /// The IPv4 address the other nodes and the overlay use for this node
    /// (Swarm's --advertise-addr); nil: the node's address on its route to the coordinator.
    public var advertiseAddress: String?
    /// Join the overlay (VXLAN between the nodes, routing mesh) the coordinator describes.
    public var overlay = true
    /// Capacity offered to the scheduler; 0: what the machine has.
    public var cpuMillis: Int64 = 0
    public var memory: Int64 = 0
    /// Threads running engine operations (start, stop, logs), so a slow stop never delays a heartbeat.
    public var workers = 4
    /// How often the node's containers are looked at.
    public var observeInterval = 1.0
    /// Share of the certificate's lifetime after which it is renewed.
    public var renewAt = 0.5
    public var logLevel = ClusterLog.Level.info
    public var limits = ConnectionLimits()
    /// Prometheus metrics over plain HTTP; nil: none.
    public var metricsListen: Endpoint?
    /// Host devices (paths, or patterns with `*`, `?`, `[…]`) reported to the
    /// coordinator whether or not a service names them (those the services
    /// name are reported anyway, where they exist): `NodeDevices`.
    public var devices = AgentConfig.defaultDevices
    /// Host devices (paths or patterns) this node never reports nor gives to a task.
    public var denyDevices: [String] = []

    /// What a Pi's services usually ask for: GPIO, I²C, SPI, serial adapters, cameras.
    public static let defaultDevices = ["/dev/gpiomem", "/dev/gpiochip*", "/dev/i2c-*", "/dev/spidev*", "/dev/ttyUSB*", "/dev/ttyACM*",
                                        "/dev/ttyAMA*", "/dev/video*", "/dev/vchiq", "/dev/snd/*"]

    public init() {}

    /// The load probe `load_cgroup` asks for.
    public func makeProbe() -> any NodeProbe {
        loadCgroup.isEmpty ? ProcNodeProbe() : CgroupNodeProbe(path: loadCgroup)
    }

    public static func load(_ path: String) throws(ClusterError) -> AgentConfig {
        try parse(try ConfigFile.load(path))
    }

    public static func parse(_ file: ConfigFile) throws(ClusterError) -> AgentConfig {
        var r = ConfigReader(file)
        var c = AgentConfig()
        let coord = try r.string("coordinator", default: "")
        if !coord.isEmpty {
            do { _ = try Endpoint(parsing: coord, defaultPort: CoordinatorConfig.defaultPort) } catch {
                throw .config(key: "coordinator", reason: error.description)
            }
            c.coordinator = coord
        }
        c.stateDir = FS.absolute(try r.string("state_dir", default: c.stateDir))
        c.name = try r.string("name", default: "")
        if c.name.isEmpty { c.name = AgentConfig.hostname() }
        guard !c.name.contains(where: { $0.isWhitespace }), c.name.utf8.count <= 128 else {
            throw .config(key: "name", reason: "\"\(c.name)\": no spaces, at most 128 bytes")
        }
        c.labels = try r.table("labels")
        c.root = FS.absolute(try r.string("root", default: c.root))
        c.runRoot = FS.absolute(try r.string("run_root", default: c.runRoot))
        c.cgroupParent = try r.string("cgroup_parent", default: c.cgroupParent)
        guard !c.cgroupParent.isEmpty, !c.cgroupParent.contains(".."), !c.cgroupParent.hasPrefix("/") else {
            throw .config(key: "cgroup_parent", reason: "a relative cgroup path such as \"hako\"")
        }
        c.loadCgroup = try r.string("load_cgroup", default: "")
        guard !c.loadCgroup.contains(".."), !c.loadCgroup.hasPrefix("/") else {
            throw .config(key: "load_cgroup", reason: "a relative cgroup path such as \"hako\" (the cgroup parent), or empty for the whole machine")
        }
        let advertise = try r.string("advertise_address", default: "")
        if !advertise.isEmpty {
            guard IPv4Address(advertise) != nil, advertise != "0.0.0.0" else {
                throw .config(key: "advertise_address", reason: "\"\(advertise)\" is not an IPv4 address of this node")
            }
            c.advertiseAddress = advertise
        }
        c.overlay = try r.bool("overlay", default: c.overlay)
        let cpus = try r.number("resources.cpus", default: 0, range: 0...4096)
        c.cpuMillis = Int64(cpus * 1000)
        c.memory = try r.bytes("resources.memory", default: 0)
        c.workers = try r.integer("workers", default: c.workers, range: 1...64)
        c.observeInterval = try r.duration("observe_interval", default: c.observeInterval, range: 0.05...60)
        c.renewAt = try r.number("renew_at", default: c.renewAt, range: 0.1...0.9)
        c.limits.maxLine = try r.integer("max_line_bytes", default: c.limits.maxLine, range: 4096...(64 << 20))
        c.metricsListen = try r.metricsEndpoint()
        c.devices = try r.strings("devices", default: c.devices)
        c.denyDevices = try r.strings("deny_devices", default: c.denyDevices)
        for (key, list) in [("devices", c.devices), ("deny_devices", c.denyDevices)] {
            for d in list where !DeviceRequest.isAcceptable(d) {
                throw .config(key: key, reason: "\"\(d)\" is not an absolute path or pattern (no \"..\", at most \(DeviceRequest.maxPathBytes) bytes)")
            }
        }
        let level = try r.string("log_level", default: "info")
        guard let l = ClusterLog.Level(name: level) else { throw .config(key: "log_level", reason: "\"\(level)\": debug, info, warning or error") }
        c.logLevel = l
        try r.finish()
        return c
    }

    /// What the node reports of its devices and refuses to tasks.
    public var nodeDevices: NodeDevices { NodeDevices(offered: devices, denied: denyDevices) }

    public static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        let h = cString(buf)
        return h.isEmpty ? "node" : h
    }
}
