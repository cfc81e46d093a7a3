#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import Testing

/// A cluster on one machine: a coordinator and N agents, each agent in its
/// own network namespace with its own data root, run root and cgroup parent;
/// the namespaces joined by an underlay bridge inside a namespace of its own
/// (where the coordinator listens). Every address lives inside namespaces the
/// harness made; they are deleted, with everything else, at the end.
final class ClusterHarness: @unchecked Sendable {
    struct Node {
        var index: Int
        var name: String
        var netns: String
        var address: String
        var dir: String
        var cgroupParent: String
        var config: String
        var agent: pid_t = 0
        var env: [String: String] {
            ["HAKO_ROOT": dir + "/root", "HAKO_RUN_ROOT": dir + "/run", "HAKO_CGROUP_PARENT": cgroupParent, "HAKO_MONITOR": Binaries.monitor]
        }
    }

    let tag: String
    let base: String
    let underlay: String
    let coordinatorAddress: String
    let coordinatorConfig: String
    var coordinator: pid_t = 0
    var nodes: [Node] = []
    var failed = false
    /// docker-registry on the underlay (`registry: true`), and the admin's
    /// engine root that pushes to it and reads images' platforms from it.
    var registryPID: pid_t = 0
    static let registryAddress = "10.213.0.1:5000"
    var adminEnv: [String: String] { ["HAKO_ROOT": base + "/engine/root", "HAKO_RUN_ROOT": base + "/engine/run"] }
    /// The admin credentials `cluster(…)` uses: the harness's own `cluster init
    /// --credentials`, or (`bootstrap: false`) the default, the coordinator's `data_dir/admin`.
    let adminCredentials: String

    /// `grace`: the coordinator's down_after (short, so failover tests are quick;
    /// HAKO_TEST_CLUSTER_GRACE overrides the default where everything is slower,
    /// as in the VM tier under TCG, where an agent's restart alone takes longer).
    /// `registry`: a registry on the underlay, which every engine reaches over plain HTTP.
    /// `loadAware`: each node's load is its own cgroup parent's CPU and memory
    /// (agent.toml `load_cgroup`), and the scheduler weighs CPU heavily.
    /// `bootstrap: false`: the namespaces, configurations and images only; the
    /// caller runs `cluster init`, the coordinator, the joins and the agents
    /// (GettingStartedTests, with the guide's own commands).
    /// `agentSettings[i]`: more top-level agent.toml lines for node i (1-based), e.g. its `devices`.
    init(_ tag: String, nodes count: Int, grace: String = ProcessInfo.processInfo.environment["HAKO_TEST_CLUSTER_GRACE"] ?? "3s",
         registry: Bool = false, loadAware: Bool = false, bootstrap: Bool = true, agentSettings: [Int: String] = [:]) {
        self.tag = "\(tag)\(getpid() % 100_000)"
        var template = Array("/tmp/hako-cluster-\(tag)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        base = made.map { String(cString: $0) } ?? "/tmp/hako-cluster-\(tag)-\(getpid())"
        underlay = "hk-\(self.tag)-ul"
        coordinatorAddress = "10.213.0.1:4270"
        coordinatorConfig = base + "/coordinator.toml"
        adminCredentials = bootstrap ? base + "/admin" : base + "/coordinator/admin"
        write(coordinatorConfig, """
            data_dir = "\(base)/coordinator"
            listen = "\(coordinatorAddress)"
            heartbeat_period = "250ms"
            heartbeat_jitter = "50ms"
            down_after = "\(grace)"
            log_level = "info"
            [scheduler]
            """ + "\n" + (loadAware ? """
            # Each node's load is its own cgroup subtree's: on a machine shared
            # with other work a burner gets a fraction of a core, so CPU counts
            # ten times the default here (a node 15 % busy weighs as three
            # replicas of the service).
            cpu_weight = 20
            memory_weight = 0
            """ : """
            # The nodes share one machine: their /proc loads are one load sampled
            # at different moments. Placement here is spread and task count only
            # (ClusterLoadTests gives each node a load of its own).
            cpu_weight = 0
            memory_weight = 0
            """))
        sh(["/usr/sbin/ip", "netns", "add", underlay])
        sh(["/usr/sbin/ip", "-n", underlay, "link", "set", "lo", "up"])
        sh(["/usr/sbin/ip", "-n", underlay, "link", "add", "br0", "type", "bridge"])
        sh(["/usr/sbin/ip", "-n", underlay, "addr", "add", "10.213.0.1/24", "dev", "br0"])
        sh(["/usr/sbin/ip", "-n", underlay, "link", "set", "br0", "up"])
        if registry { startRegistry() }
        for i in 1...count {
            let ns = "hk-\(self.tag)-n\(i)"
            let dir = base + "/n\(i)"
            var n = Node(index: i, name: "node\(i)", netns: ns, address: "10.213.0.\(10 + i)", dir: dir,
                         cgroupParent: "hako-test-cl-\(self.tag)-n\(i)", config: dir + "/agent.toml")
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            sh(["/usr/sbin/ip", "netns", "add", ns])
            sh(["/usr/sbin/ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["/usr/sbin/ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "ul\(i)", "netns", underlay])
            sh(["/usr/sbin/ip", "-n", underlay, "link", "set", "ul\(i)", "master", "br0", "up"])
            sh(["/usr/sbin/ip", "-n", ns, "addr", "add", n.address + "/24", "dev", "eth0"])
            sh(["/usr/sbin/ip", "-n", ns, "link", "set", "eth0", "up"])
            write(n.config, """
                state_dir = "\(dir)/state"
                root = "\(dir)/root"
                run_root = "\(dir)/run"
                cgroup_parent = "\(n.cgroupParent)"
                name = "\(n.name)"
                observe_interval = "200ms"
                \(loadAware ? "load_cgroup = \"\(n.cgroupParent)\"" : "")
                \(agentSettings[i] ?? "")
                [labels]
                zone = "\(i % 2 == 1 ? "a" : "b")"
                """)
            if registry { trustRegistry(root: dir + "/root") }
            let r = Subprocess.run([Binaries.hako, "import", BusyboxImage.tarball, "busybox:test"], env: n.env)
            if r.status != 0 { fail("import on \(n.name): \(r.stderr)") }
            n.config = dir + "/agent.toml"
            nodes.append(n)
        }
        guard bootstrap else { return }
        let r = Subprocess.run([Binaries.hako, "cluster", "init", "--config", coordinatorConfig, "--credentials", base + "/admin"])
        if r.status != 0 { fail("cluster init: \(r.stderr)") }
        startCoordinator()
        for i in nodes.indices {
            let token = cluster("token", "-q").out
            startAgent(i, join: token)
        }
        if !eventually(20, { self.readyNodes() == count }) { fail("\(readyNodes())/\(count) nodes ready") }
    }

    func fail(_ why: String) {
        failed = true
        Issue.record("cluster harness: \(why)")
    }

    func write(_ path: String, _ text: String) {
        FileManager.default.createFile(atPath: path, contents: Data((text + "\n").utf8))
    }

    @discardableResult
    func sh(_ argv: [String], timeout: Double = 20) -> Output {
        let r = Subprocess.run(argv, timeout: timeout)
        if r.status != 0 { fail("\(argv.joined(separator: " ")): \(r.stderr)") }
        return r
    }

    /// Runs in the underlay namespace, where the coordinator listens.
    func inUnderlay(_ argv: [String]) -> [String] { ["/usr/bin/nsenter", "--net=/run/netns/\(underlay)", "--"] + argv }

    /// The node's own `hako`, in the node's network namespace (where its engine keeps its bridge and firewall).
    func onNode(_ n: Node, _ args: [String], timeout: Double = 60) -> Output {
        Subprocess.run(["/usr/bin/nsenter", "--net=/run/netns/\(n.netns)", "--", Binaries.hako] + args, env: n.env, timeout: timeout)
    }

    func startCoordinator() {
        coordinator = Subprocess.spawn(inUnderlay([Binaries.hako, "coordinator", "--config", coordinatorConfig]),
                                       stdout: base + "/coordinator.out", stderr: base + "/coordinator.log.\(Int(monotonicSeconds() * 1000))")
        if !eventually(10, { self.cluster("node", "ls", "-q").status == 0 }) { fail("the coordinator did not start") }
    }

    func startAgent(_ i: Int, join token: String? = nil) {
        let n = nodes[i]
        var argv = [Binaries.hako, "agent", "--config", n.config]
        if let token { argv += ["--join", token, coordinatorAddress] }
        nodes[i].agent = Subprocess.spawn(["/usr/bin/nsenter", "--net=/run/netns/\(n.netns)", "--"] + argv,
                                          env: ["HAKO_MONITOR": Binaries.monitor],
                                          stderr: n.dir + "/agent.log.\(Int(monotonicSeconds() * 1000))")
    }

    func kill9(_ pid: pid_t) {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        _ = Subprocess.waitBounded(pid, timeout: 10)
    }

    func stop(_ pid: pid_t) {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        if Subprocess.waitBounded(pid, timeout: 10) == -2 { kill9(pid) }
    }

    func killAgent(_ i: Int) {
        kill9(nodes[i].agent)
        nodes[i].agent = 0
    }

    func killCoordinator() {
        kill9(coordinator)
        coordinator = 0
    }

    /// The node's underlay link: down is a partition.
    func link(_ i: Int, up: Bool) {
        sh(["/usr/sbin/ip", "-n", nodes[i].netns, "link", "set", "eth0", up ? "up" : "down"])
    }

    @discardableResult
    func cluster(_ args: String..., timeout: Double = 60) -> Output { cluster(args, timeout: timeout) }

    /// The credentials go right after the command's words ("events", "node ls",
    /// "service create"): later, they could be taken for a value or the container's command.
    @discardableResult
    func cluster(_ args: [String], timeout: Double = 60) -> Output {
        let words = ["service", "node", "ca", "secret", "config", "stack", "network"].contains(args.first ?? "") ? 2 : 1
        return Subprocess.run(inUnderlay([Binaries.hako, "cluster"] + Array(args.prefix(words)) + ["--credentials", adminCredentials] + Array(args.dropFirst(words))),
                              env: adminEnv, timeout: timeout)
    }

    func json(_ args: String...) -> [[String: Any]] {
        let r = cluster(args + ["--format", "json"])
        return r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func readyNodes() -> Int { json("node", "ls").filter { $0["status"] as? String == "ready" }.count }

    /// Ground truth: the service's containers running on each node, by `hako ps` with the node's own data root.
    func running(_ service: String) -> [[String]] {
        nodes.map { n in
            let r = onNode(n, ["ps", "--format", "json", "--no-trunc"])
            return r.stdout.split(separator: "\n").compactMap { line -> String? in
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let name = o["Names"] as? String, name.hasPrefix(service + "."), o["State"] as? String == "running" else { return nil }
                return o["ID"] as? String
            }
        }
    }

    func runningCount(_ service: String) -> [Int] { running(service).map(\.count) }

    /// Tasks as `service ps` shows them.
    func tasks(_ service: String, all: Bool = false) -> [[String: Any]] {
        all ? json("service", "ps", service, "--all") : json("service", "ps", service)
    }

    func eventually(_ timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return condition()
    }

    func logs() -> String {
        var out = ""
        for f in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where f.hasPrefix("coordinator.log") {
            out += "== \(f)\n" + ((try? String(contentsOfFile: base + "/" + f, encoding: .utf8)) ?? "")
        }
        for n in nodes {
            for f in (try? FileManager.default.contentsOfDirectory(atPath: n.dir)) ?? [] where f.hasPrefix("agent.log") {
                out += "== \(n.name) \(f)\n" + ((try? String(contentsOfFile: n.dir + "/" + f, encoding: .utf8)) ?? "")
            }
        }
        return out
    }

    func teardown() {
        if ProcessInfo.processInfo.environment["HAKO_KEEP_CLUSTER_LOGS"] != nil {
            var dump = ""
            for n in nodes {
                let ids = onNode(n, ["ps", "-aq", "--no-trunc"]).stdout.split(separator: "\n").map(String.init)
                dump += "== \(n.name)\n" + onNode(n, ["inspect"] + ids).stdout
            }
            write(base + "/containers.dump", dump)
        }
        for n in nodes { stop(n.agent) }
        stop(coordinator)
        coordinator = 0
        for n in nodes {
            let ids = onNode(n, ["ps", "-aq", "--no-trunc"]).stdout.split(separator: "\n").map(String.init)
            if !ids.isEmpty { _ = onNode(n, ["rm", "-f"] + ids) }
            let hierarchies = TestHost.cgroupV2 ? [""] : (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
            for hierarchy in hierarchies {
                let p = hierarchy.isEmpty ? "/sys/fs/cgroup/\(n.cgroupParent)" : "/sys/fs/cgroup/\(hierarchy)/\(n.cgroupParent)"
                if FileManager.default.fileExists(atPath: p) {
                    for child in (try? FileManager.default.contentsOfDirectory(atPath: p)) ?? [] where child.count == 64 { rmdir(p + "/" + child) }
                    rmdir(p)
                }
            }
            _ = Subprocess.run(["/usr/sbin/ip", "netns", "delete", n.netns])
        }
        nodes = []
        stopRegistry()
        _ = Subprocess.run(["/usr/sbin/ip", "netns", "delete", underlay])
        if ProcessInfo.processInfo.environment["HAKO_KEEP_CLUSTER_LOGS"] == nil {
            try? FileManager.default.removeItem(atPath: base)
        }
    }

    deinit { teardown() }
}
