import Foundation
@testable import HakoCluster
import HakoRuntime
import HakoSystem
import Testing

@Suite struct ConfigTests {
    @Test func parsesTheSubsetOfTOML() throws {
        let f = try ConfigFile(parsing: """
        # comment
        listen = "10.0.0.1:4270"   # trailing comment
        advertise = ["pi1.local", 'a#b']
        heartbeat_period = "500ms"
        task_history = 1_0
        [scheduler]
        cpu_weight = 2.5
        [labels]
        zone = "a"
        ssd = true
        """)
        #expect(f.values["listen"] == .string("10.0.0.1:4270"))
        #expect(f.values["advertise"] == .array([.string("pi1.local"), .string("a#b")]))
        #expect(f.values["task_history"] == .integer(10))
        #expect(f.values["scheduler.cpu_weight"] == .float(2.5))
        #expect(f.values["labels.ssd"] == .bool(true))
    }

    @Test func coordinatorDefaultsAndValues() throws {
        let d = try CoordinatorConfig.parse(ConfigFile())
        #expect(d.listen.port == 4270 && d.clusterCIDR == "10.88.0.0/16" && d.nodeSubnetPrefix == 24)
        #expect(d.heartbeatPeriod == 1 && d.downAfter == 3 && d.joinTokenTTL == 3600)
        let c = try CoordinatorConfig.parse(try ConfigFile(parsing: """
        data_dir = "/tmp/x"
        cluster_cidr = "10.99.0.0/20"
        node_subnet_prefix = 26
        heartbeat_period = "250ms"
        heartbeat_jitter = "50ms"
        down_after = "1.5s"
        [scheduler]
        spread_weight = 3
        """))
        #expect(c.clusterCIDR == "10.99.0.0/20" && c.nodeSubnetPrefix == 26 && c.heartbeatPeriod == 0.25 && c.downAfter == 1.5)
        #expect(c.weights.spread == 3)
    }

    /// Bad settings are refused with their key and the reason.
    @Test func refusesBadSettings() {
        func reason(_ text: String) -> ClusterError? {
            do { _ = try CoordinatorConfig.parse(try ConfigFile(parsing: text)); return nil } catch { return error }
        }
        #expect(reason("lisen = \"x:1\"") == .config(key: "lisen", reason: "unknown setting (line 1)"))
        if case .config(let k, _)? = reason("cluster_cidr = \"10.88.1.0/16\"") { #expect(k == "cluster_cidr") } else { Issue.record("accepted") }
        if case .config(let k, _)? = reason("node_subnet_prefix = 12") { #expect(k == "node_subnet_prefix") } else { Issue.record("accepted") }
        if case .config(let k, let r)? = reason("heartbeat_period = \"soon\"") { #expect(k == "heartbeat_period" && r.contains("not a duration")) } else { Issue.record("accepted") }
        if case .config(let k, _)? = reason("down_after = \"1s\"\nheartbeat_period = \"1s\"") { #expect(k == "down_after") } else { Issue.record("accepted") }
        if case .config(let k, _)? = reason("listen = 4270") { #expect(k == "listen") } else { Issue.record("accepted") }
        if case .config(let k, _)? = reason("x = unquoted") { #expect(k == "x") } else { Issue.record("accepted") }
        if case .config(let k, _)? = reason("a = 1\na = 2") { #expect(k == "a") } else { Issue.record("accepted") }
        if case .config(let k, _)? = reason("log_level = \"loud\"") { #expect(k == "log_level") } else { Issue.record("accepted") }
    }

    @Test func agentConfig() throws {
        let a = try AgentConfig.parse(try ConfigFile(parsing: """
        coordinator = "10.0.0.1"
        name = "pi-1"
        [labels]
        zone = "a"
        [resources]
        cpus = 1.5
        memory = "512m"
        """))
        #expect(a.coordinator == "10.0.0.1" && a.name == "pi-1" && a.labels == ["zone": "a"])
        #expect(a.cpuMillis == 1500 && a.memory == 512 << 20)
        #expect(throws: ClusterError.self) { try AgentConfig.parse(try ConfigFile(parsing: "cgroup_parent = \"/abs\"")) }
        #expect(throws: ClusterError.self) { try AgentConfig.parse(try ConfigFile(parsing: "[resources]\ngpus = 1")) }
    }

    /// Multi-homed nodes: the advertised address; the overlay's VNI and port; the load's cgroup.
    @Test func overlayAndLoadSettings() throws {
        let a = try AgentConfig.parse(try ConfigFile(parsing: """
            advertise_address = "192.168.1.20"
            load_cgroup = "hako"
            """))
        #expect(a.advertiseAddress == "192.168.1.20" && a.loadCgroup == "hako")
        #expect(try AgentConfig.parse(ConfigFile()).advertiseAddress == nil)
        for bad in ["advertise_address = \"eth0\"", "advertise_address = \"0.0.0.0\"", "load_cgroup = \"/abs\"", "load_cgroup = \"a/../b\""] {
            #expect(throws: ClusterError.self, "\(bad)") { try AgentConfig.parse(try ConfigFile(parsing: bad)) }
        }
        let c = try CoordinatorConfig.parse(try ConfigFile(parsing: "overlay_vni = 42\noverlay_port = 8472"))
        #expect(c.overlayVNI == 42 && c.overlayPort == 8472)
        let d = try CoordinatorConfig.parse(ConfigFile())
        #expect(d.overlayVNI == 4096 && d.overlayPort == 4789)
        #expect(throws: ClusterError.self) { try CoordinatorConfig.parse(try ConfigFile(parsing: "overlay_vni = 16777216")) }
        #expect(throws: ClusterError.self) { try CoordinatorConfig.parse(try ConfigFile(parsing: "overlay_port = 0")) }
        // The network pool: an IPv4 network with room for a /20.
        #expect(d.networkPool == "10.96.0.0/12")
        #expect(try CoordinatorConfig.parse(try ConfigFile(parsing: "network_pool = \"172.20.0.0/16\"")).networkPool == "172.20.0.0/16")
        for bad in ["network_pool = \"10.96.0.1/12\"", "network_pool = \"10.96.0.0/24\"", "network_pool = \"pool\""] {
            #expect(throws: ClusterError.self, "\(bad)") { try CoordinatorConfig.parse(try ConfigFile(parsing: bad)) }
        }
    }

    /// The load of a cgroup subtree: its CPU time against the machine's CPUs, its memory.
    @Test func cgroupLoadProbe() {
        final class Files: @unchecked Sendable { var usage: UInt64 = 0 }
        let files = Files()
        let v1 = CgroupHost.parse(mountinfo: """
            26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
            30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
            31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
            """)
        var probe = CgroupNodeProbe(path: "hako-n1", host: v1, cpus: 4) { (path: String) -> String? in
            switch path {
            case "/sys/fs/cgroup/cpu,cpuacct/hako-n1/cpuacct.usage": return String(files.usage)
            case "/sys/fs/cgroup/memory/hako-n1/memory.usage_in_bytes": return "1073741824\n"
            case "/proc/meminfo": return "MemTotal: 4194304 kB\nMemAvailable: 1000 kB\n"
            default: return nil
            }
        }
        _ = probe.load(containers: 0)
        // Two of four CPUs busy for 0.2 s.
        let start = monotonicSeconds()
        usleep(200_000)
        files.usage = UInt64((monotonicSeconds() - start) * 2e9)
        let l = probe.load(containers: 1)
        #expect(abs(l.cpu - 0.5) < 0.1, "\(l.cpu)")
        #expect(l.memoryTotal == 4 << 30 && abs(l.memoryUsed - 0.25) < 0.001, "the subtree's memory, not the machine's")
        let v2 = CgroupHost.parse(mountinfo: "26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
        let p2 = CgroupNodeProbe(path: "/hako/", host: v2, cpus: 1) { (path: String) -> String? in
            path == "/sys/fs/cgroup/hako/cpu.stat" ? "usage_usec 1500\nuser_usec 1000\n" : nil
        }
        #expect(p2.cpuNanos() == 1_500_000 && p2.memoryFile == "/sys/fs/cgroup/hako/memory.current")
    }

    @Test func durationsAndSizes() {
        #expect(Durations.parse("250ms") == 0.25)
        #expect(Durations.parse("1h30m") == 5400)
        #expect(Durations.parse("3") == 3)
        #expect(Durations.parse("3x") == nil)
        #expect(Durations.parse("") == nil)
        #expect(Durations.format(0.25) == "250ms" && Durations.format(5400) == "1h30m")
        #expect(ByteSize.parse("512m") == 512 << 20 && ByteSize.parse("1.5g") == 3 << 29 && ByteSize.parse("-1") == nil)
    }
}

/// The documented examples in config/ are valid and spell out the defaults.
@Suite struct ExampleConfigTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func coordinatorExampleIsTheDefaults() throws {
        let c = try CoordinatorConfig.load(ExampleConfigTests.repo + "/config/coordinator.toml")
        let d = CoordinatorConfig()
        #expect(c.dataDir == d.dataDir && c.listen == d.listen && c.clusterCIDR == d.clusterCIDR && c.nodeSubnetPrefix == d.nodeSubnetPrefix)
        #expect(c.networkPool == d.networkPool)
        #expect(c.heartbeatPeriod == d.heartbeatPeriod && c.heartbeatJitter == d.heartbeatJitter && c.downAfter == d.downAfter)
        #expect(c.joinTokenTTL == d.joinTokenTTL && c.nodeCertTTL == d.nodeCertTTL && c.taskHistory == d.taskHistory)
        #expect(c.weights == d.weights && c.limits.maxLine == d.limits.maxLine && c.limits.maxMalformed == d.limits.maxMalformed)
    }

    @Test func agentExampleIsTheDefaults() throws {
        let a = try AgentConfig.load(ExampleConfigTests.repo + "/config/agent.toml")
        let d = AgentConfig()
        #expect(a.coordinator == nil && a.stateDir == d.stateDir && a.root == d.root && a.runRoot == d.runRoot)
        #expect(a.cgroupParent == d.cgroupParent && a.workers == d.workers && a.observeInterval == d.observeInterval && a.renewAt == d.renewAt)
        #expect(a.cpuMillis == 0 && a.memory == 0 && a.labels.isEmpty && a.overlay == d.overlay)
        #expect(a.nodeDevices == d.nodeDevices)
    }
}
