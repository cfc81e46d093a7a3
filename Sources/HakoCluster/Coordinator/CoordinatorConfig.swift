import HakoSystem

/// `hako coordinator --config FILE` (config/coordinator.toml documents each key).
public struct CoordinatorConfig: Sendable {
    public var dataDir = "/var/lib/hako/coordinator"
    public var listen = Endpoint(host: "0.0.0.0", port: CoordinatorConfig.defaultPort)
    /// Extra names and addresses for the coordinator's certificate.
    public var advertise: [String] = []
    public var clusterCIDR = "10.88.0.0/16"
    public var nodeSubnetPrefix = 24
    /// The overlay's VXLAN network identifier and UDP port, sent to every node with the peer map.
    public var overlayVNI = OverlayMessage.defaultVNI
    public var overlayPort = OverlayMessage.defaultPort
    /// Where `network create` without `--subnet` takes a network's CIDR (a /20 each).
    public var networkPool = NetworkAllocator.defaultPool
    public var heartbeatPeriod = 1.0
    /// Each period is drawn from period ± jitter.
    public var heartbeatJitter = 0.2
    /// Missed heartbeats before a node is suspect (it then gets no new tasks).
    public var suspectAfterMissed = 2
    /// Silence after which a node is down and its tasks move (the grace period).
    public var downAfter = 3.0
    public var joinTokenTTL = 3600.0
    public var nodeCertTTL = 86400.0
    /// Terminal tasks kept per slot (`service ps --all`).
    public var taskHistory = 5
    public var limits = ConnectionLimits()
    public var logLevel = ClusterLog.Level.info
    public var weights = SchedulerWeights()
    /// Prometheus metrics over plain HTTP; nil: none.
    public var metricsListen: Endpoint?

    /// Several coordinators replicate the store with Raft when set (`raft_*` keys); nil: one coordinator, as before.
    public var raft: RaftSettings?

    public static let defaultPort: UInt16 = 4270
    public static let defaultRaftPort: UInt16 = 4271

    public init() {}

    public var databasePath: String { dataDir + "/cluster.db" }

    public static func load(_ path: String) throws(ClusterError) -> CoordinatorConfig {
        try parse(try ConfigFile.load(path))
    }

    public static func parse(_ file: ConfigFile) throws(ClusterError) -> CoordinatorConfig {
        var r = ConfigReader(file)
        var c = CoordinatorConfig()
        c.dataDir = FS.absolute(try r.string("data_dir", default: c.dataDir))
        let listen = try r.string("listen", default: c.listen.description)
        do { c.listen = try Endpoint(parsing: listen, defaultPort: defaultPort) } catch {
            throw .config(key: "listen", reason: error.description)
        }
        c.advertise = try r.strings("advertise", default: [])
        c.clusterCIDR = try r.string("cluster_cidr", default: c.clusterCIDR)
        c.nodeSubnetPrefix = try r.integer("node_subnet_prefix", default: c.nodeSubnetPrefix, range: 8...30)
        _ = try SubnetAllocator(cluster: c.clusterCIDR, prefix: c.nodeSubnetPrefix)
        c.overlayVNI = try r.integer("overlay_vni", default: c.overlayVNI, range: 1...16_777_215)
        c.overlayPort = try r.integer("overlay_port", default: c.overlayPort, range: 1...65535)
        c.networkPool = try r.string("network_pool", default: c.networkPool)
        _ = try NetworkAllocator(pool: c.networkPool, cluster: c.clusterCIDR, clusterVNI: c.overlayVNI)
        c.heartbeatPeriod = try r.duration("heartbeat_period", default: c.heartbeatPeriod, range: 0.05...60)
        c.heartbeatJitter = try r.duration("heartbeat_jitter", default: min(c.heartbeatJitter, c.heartbeatPeriod / 2), range: 0...30)
        guard c.heartbeatJitter < c.heartbeatPeriod else {
            throw .config(key: "heartbeat_jitter", reason: "must be shorter than heartbeat_period (\(Durations.format(c.heartbeatPeriod)))")
        }
        c.suspectAfterMissed = try r.integer("suspect_after_missed", default: c.suspectAfterMissed, range: 1...100)
        c.downAfter = try r.duration("down_after", default: max(c.downAfter, c.heartbeatPeriod * 2), range: 0.1...86400)
        guard c.downAfter > c.heartbeatPeriod + c.heartbeatJitter else {
            throw .config(key: "down_after", reason: "the grace period must be longer than one heartbeat period with its jitter")
        }
        c.joinTokenTTL = try r.duration("join_token_ttl", default: c.joinTokenTTL, range: 10...(30 * 86400))
        c.nodeCertTTL = try r.duration("node_cert_ttl", default: c.nodeCertTTL, range: 60...(365 * 86400))
        c.taskHistory = try r.integer("task_history", default: c.taskHistory, range: 0...100)
        c.limits.maxLine = try r.integer("max_line_bytes", default: c.limits.maxLine, range: 4096...(64 << 20))
        c.limits.maxMalformed = try r.integer("max_malformed_lines", default: c.limits.maxMalformed, range: 1...1000)
        c.limits.handshakeTimeout = try r.duration("handshake_timeout", default: c.limits.handshakeTimeout, range: 0.5...300)
        let level = try r.string("log_level", default: "info")
        guard let l = ClusterLog.Level(name: level) else { throw .config(key: "log_level", reason: "\"\(level)\": debug, info, warning or error") }
        c.logLevel = l
        c.metricsListen = try r.metricsEndpoint()
        c.weights.spread = try r.number("scheduler.spread_weight", default: c.weights.spread, range: 0...1000)
        c.weights.cpu = try r.number("scheduler.cpu_weight", default: c.weights.cpu, range: 0...1000)
        c.weights.memory = try r.number("scheduler.memory_weight", default: c.weights.memory, range: 0...1000)
        c.weights.tasks = try r.number("scheduler.tasks_weight", default: c.weights.tasks, range: 0...1000)
        c.raft = try parseRaft(&r)
        try r.finish()
        return c
    }

    /// `raft_id` (nonzero), `raft_address` (HOST:PORT the other coordinators
    /// reach, and where this one listens), `raft_peers` (the first voters,
    /// "ID@HOST:PORT", this one included), `raft_election_timeout`.
    static func parseRaft(_ r: inout ConfigReader) throws(ClusterError) -> RaftSettings? {
        let address = try r.string("raft_address", default: "")
        let id = try r.integer("raft_id", default: 0, range: 0...Int.max)
        let peers = try r.strings("raft_peers", default: [])
        let election = try r.duration("raft_election_timeout", default: 0.75, range: 0.1...60)
        guard !address.isEmpty else {
            guard id == 0, peers.isEmpty else { throw .config(key: "raft_address", reason: "raft_id and raft_peers need raft_address") }
            return nil
        }
        guard id > 0 else { throw .config(key: "raft_id", reason: "a number above 0, unique among the coordinators") }
        let ep: Endpoint
        do { ep = try Endpoint(parsing: address, defaultPort: defaultRaftPort) } catch { throw .config(key: "raft_address", reason: error.description) }
        var settings = RaftSettings(id: UInt64(id), address: ep)
        settings.electionTimeout = election
        settings.heartbeat = max(0.02, election / 10)
        for p in peers {
            let parts = p.split(separator: "@", maxSplits: 1).map(String.init)
            guard parts.count == 2, let pid = UInt64(parts[0]), pid > 0, (try? Endpoint(parsing: parts[1])) != nil else {
                throw .config(key: "raft_peers", reason: "\"\(p)\": expected ID@HOST:PORT")
            }
            settings.bootstrap.append((pid, parts[1]))
        }
        // Without peers the first coordinator starts a cluster of one voter; others join it.
        if settings.bootstrap.isEmpty { settings.bootstrap = [(settings.id, ep.description)] }
        if !settings.bootstrap.contains(where: { $0.id == settings.id }) {
            throw .config(key: "raft_peers", reason: "must include this coordinator (\(id)@\(ep))")
        }
        return settings
    }
}
