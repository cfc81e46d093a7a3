@testable import HakoCluster
import HakoImage
import Testing
import HakoNetwork

@Suite struct SchedulerTests {
    func node(_ name: String, labels: [String: String] = [:], arch: String = "arm64", variant: String? = nil, cpu: Int64 = 4000,
              mem: Int64 = 4 << 30, status: NodeStatus = .ready, availability: NodeAvailability = .active, load: Double = 0) -> SchedulerNode {
        SchedulerNode(record: NodeRecord(id: "id-" + name, name: name, hostname: name, platform: PlatformSpec(architecture: arch, variant: variant),
                                         labels: labels, capacity: Resources(cpuMillis: cpu, memory: mem), availability: availability,
                                         subnet: "", address: "", agentVersion: "", created: 0, updated: 0),
                      status: status, load: NodeLoad(cpu: load, memoryTotal: mem, memoryAvailable: mem))
    }

    func requests(_ n: Int, service: String = "svc", reserve: Resources = .zero, constraints: [String] = [], platforms: [String] = []) -> [SchedulingRequest] {
        (1...n).map {
            SchedulingRequest(taskID: "\(service)-\($0)", serviceID: service, group: service, reservations: reserve,
                              constraints: constraints.compactMap { try? Constraint(parsing: $0) },
                              platforms: platforms.compactMap { try? PlatformSpec(parsing: $0) })
        }
    }

    func counts(_ p: [Placement]) -> [String: Int] {
        var c: [String: Int] = [:]
        for x in p { if let n = x.nodeID { c[n, default: 0] += 1 } }
        return c
    }

    @Test func spreadsReplicas() {
        var snap = ClusterSnapshot(nodes: [node("a"), node("b"), node("c")])
        var rng = SeededRandom(seed: 1)
        let p = Scheduler().schedule(requests(9), on: &snap, using: &rng)
        #expect(counts(p) == ["id-a": 3, "id-b": 3, "id-c": 3])
        // A second service spreads on its own, and avoids the busier nodes when tied.
        let q = Scheduler().schedule(requests(3, service: "other"), on: &snap, using: &rng)
        #expect(Set(q.compactMap(\.nodeID)).count == 3)
    }

    @Test func aLoadedNodeGetsFewerTasks() {
        var snap = ClusterSnapshot(nodes: [node("a", load: 0.95), node("b", load: 0.1), node("c", load: 0.1)])
        var rng = SeededRandom(seed: 2)
        let c = counts(Scheduler().schedule(requests(12), on: &snap, using: &rng))
        #expect((c["id-a"] ?? 0) < (c["id-b"] ?? 0) && (c["id-a"] ?? 0) < (c["id-c"] ?? 0), "\(c)")
        #expect(c.values.reduce(0, +) == 12)
        // Memory in use counts too.
        var m = node("m")
        m.load.memoryAvailable = m.load.memoryTotal / 20
        var snap2 = ClusterSnapshot(nodes: [m, node("n"), node("o")])
        let c2 = counts(Scheduler().schedule(requests(12), on: &snap2, using: &rng))
        #expect((c2["id-m"] ?? 0) < (c2["id-n"] ?? 0), "\(c2)")
    }

    /// Each placement says what the chosen node's score was made of, and which node came next.
    @Test func placementsExplainTheChoice() {
        var snap = ClusterSnapshot(nodes: [node("a", load: 0.6), node("b", load: 0.1)])
        var rng = SeededRandom(seed: 4)
        let p = Scheduler().schedule(requests(1), on: &snap, using: &rng)
        let first = p.first
        #expect(first?.nodeID == "id-b")
        #expect(first?.score?.cpu == 0.1 && first?.score?.serviceTasks == 0 && first?.score?.tasks == 0)
        #expect(first?.nextNode == "id-a" && abs((first?.nextScore ?? 0) - 1.2) < 1e-9, "a: 2 × cpu 0.6")
        // The core's words for it.
        #expect(CoordinatorCore.twoDecimals(1.2) == "1.20" && CoordinatorCore.twoDecimals(0.05) == "0.05" && CoordinatorCore.twoDecimals(12.345) == "12.35")
    }

    @Test func constraintsOnLabelsAndArchitecture() {
        var snap = ClusterSnapshot(nodes: [node("a", labels: ["zone": "a"]), node("b", labels: ["zone": "b"]),
                                           node("c", labels: ["zone": "a"], arch: "arm", variant: "v7")])
        var rng = SeededRandom(seed: 3)
        let p = Scheduler().schedule(requests(4, constraints: ["node.labels.zone==a"]), on: &snap, using: &rng)
        #expect(Set(p.compactMap(\.nodeID)) == ["id-a", "id-c"])
        let q = Scheduler().schedule(requests(2, service: "x", constraints: ["node.labels.zone==a", "node.platform.arch!=armv7"]), on: &snap, using: &rng)
        #expect(Set(q.compactMap(\.nodeID)) == ["id-a"])
        let r = Scheduler().schedule(requests(2, service: "y", constraints: ["node.labels.zone!=a"]), on: &snap, using: &rng)
        #expect(Set(r.compactMap(\.nodeID)) == ["id-b"])
        // A missing label fails == and passes !=.
        let s = Scheduler().schedule(requests(1, service: "z", constraints: ["node.labels.disk==ssd"]), on: &snap, using: &rng)
        #expect(s[0].nodeID == nil && s[0].reason.contains("constraint node.labels.disk==ssd excludes 3 nodes"))
    }

    /// Swarm's constraint words: uname's architecture names as well as OCI's,
    /// values without regard to case, node.id, node.hostname and node.platform.os.
    @Test func constraintsAsSwarmWritesThem() throws {
        let pi4 = node("pi4", labels: ["Disk": "SSD"]).record
        let pi2 = node("pi2", arch: "arm", variant: "v7").record
        let pc = node("pc", arch: "amd64").record
        func m(_ c: String, _ n: NodeRecord) throws -> Bool { try Constraint(parsing: c).matches(n) }
        #expect(try m("node.platform.arch==aarch64", pi4) && m("node.platform.arch==arm64", pi4) && !m("node.platform.arch==aarch64", pc))
        #expect(try m("node.platform.arch==x86_64", pc) && m("node.platform.arch!=x86_64", pi4))
        #expect(try m("node.platform.arch==armv7l", pi2) && m("node.platform.arch==arm", pi2) && !m("node.platform.arch==armv6l", pi2))
        let pi1 = node("pi1", arch: "arm", variant: "v6").record
        #expect(try m("node.platform.arch==arm/v7", pi2) && !m("node.platform.arch==arm/v7", pi1) && m("node.platform.arch==arm", pi1))
        #expect(try m("node.platform.arch==arm64/v8", pi4) && !m("node.platform.arch==arm/v6", pi2))
        #expect(try m("node.labels.Disk==ssd", pi4) && !m("node.labels.disk==ssd", pi4), "values fold case, keys do not")
        #expect(try m("node.hostname==PI4", pi4) && m("node.id!=id-pi2", pi4) && m("node.id==id-pi2", pi2))
        #expect(try m("node.platform.os==linux", pc) && m("node.platform.os!=windows", pc))
        #expect(throws: ClusterError.self) { try Constraint(parsing: "node.role==manager") }
        #expect(throws: ClusterError.self) { try Constraint(parsing: "node.labels.==x") }
        // A paused node takes nothing, and says so.
        var snap = ClusterSnapshot(nodes: [node("a", availability: .pause), node("b", availability: .drain)])
        var rng = SeededRandom(seed: 5)
        let p = Scheduler().schedule(requests(1), on: &snap, using: &rng)
        #expect(p[0].nodeID == nil && p[0].reason == "no suitable node (1 node paused, 1 node draining)")
    }

    func spreadRequests(_ n: Int, service: String = "svc", spread: [String] = [], maxPerNode: Int = 0,
                        constraints: [String] = []) throws -> [SchedulingRequest] {
        let keys = try spread.map { try PlacementPreference(parsing: $0).spread }
        return requests(n, service: service, constraints: constraints).map {
            var r = $0
            r.spread = keys
            r.maxPerNode = maxPerNode
            return r
        }
    }

    /// spread=node.labels.rack: even over the racks first (a rack of one node
    /// gets as many as a rack of three), then by score within a rack; nodes
    /// without the label are a rack of their own.
    @Test func placementPreferenceSpreadsOverLabelValues() throws {
        let nodes = [node("a1", labels: ["rack": "a"]), node("a2", labels: ["rack": "a"]), node("a3", labels: ["rack": "a"]),
                     node("b1", labels: ["rack": "b"]), node("x")]
        var snap = ClusterSnapshot(nodes: nodes)
        var rng = SeededRandom(seed: 6)
        let p = Scheduler().schedule(try spreadRequests(6, spread: ["spread=node.labels.rack"]), on: &snap, using: &rng)
        let c = counts(p)
        #expect((c["id-a1"] ?? 0) + (c["id-a2"] ?? 0) + (c["id-a3"] ?? 0) == 2 && c["id-b1"] == 2 && c["id-x"] == 2, "\(c)")
        #expect(c["id-a1"] == nil || c["id-a1"] == 1, "within a rack, by score: \(c)")
        // Racks even (2 each): the next goes by score, to rack a's idle node; then rack a is ahead.
        let q = Scheduler().schedule(try spreadRequests(2, spread: ["spread=node.labels.rack"]), on: &snap, using: &rng)
        let idle = ["id-a1", "id-a2", "id-a3"].first { c[$0] == nil }
        #expect(q[0].nodeID == idle && ["id-b1", "id-x"].contains(q[1].nodeID ?? ""), "\(q)")
        // Nested: zone first, then rack within it.
        var snap2 = ClusterSnapshot(nodes: [node("z1r1", labels: ["zone": "1", "rack": "1"]), node("z1r2", labels: ["zone": "1", "rack": "2"]),
                                            node("z2r1", labels: ["zone": "2", "rack": "1"])])
        let r = Scheduler().schedule(try spreadRequests(4, service: "n", spread: ["spread=node.labels.zone", "spread=node.labels.rack"]),
                                     on: &snap2, using: &rng)
        #expect(counts(r) == ["id-z2r1": 2, "id-z1r1": 1, "id-z1r2": 1])
        // Constraints and capacity still apply: a rack whose nodes cannot take the task is not a candidate.
        var snap3 = ClusterSnapshot(nodes: [node("a", labels: ["rack": "a"]), node("b", labels: ["rack": "b"], availability: .drain)])
        let d = Scheduler().schedule(try spreadRequests(2, spread: ["spread=node.labels.rack"]), on: &snap3, using: &rng)
        #expect(counts(d) == ["id-a": 2])
        #expect(throws: ClusterError.self) { try PlacementPreference(parsing: "binpack=node.labels.rack") }
        #expect(throws: ClusterError.self) { try PlacementPreference(parsing: "spread=rack") }
        var spec = ServiceSpec(name: "s", image: "i")
        spec.placementPreferences = ["spread=node.labels"]
        #expect(throws: ClusterError.self) { try spec.validate() }
    }

    /// --max-replicas-per-node: a node takes at most N of the service's
    /// tasks; the rest wait, saying why.
    @Test func maxReplicasPerNode() throws {
        var snap = ClusterSnapshot(nodes: [node("a"), node("b", load: 0.9)])
        var rng = SeededRandom(seed: 7)
        let p = Scheduler().schedule(try spreadRequests(5, maxPerNode: 2), on: &snap, using: &rng)
        #expect(counts(p) == ["id-a": 2, "id-b": 2])
        #expect(p.filter { $0.nodeID == nil }.map(\.reason) == ["no suitable node (max replicas per node (2) reached on 2 nodes)"])
        // With preferences too, and other services are not counted.
        var snap2 = ClusterSnapshot(nodes: [node("a", labels: ["rack": "a"]), node("b", labels: ["rack": "a"]), node("c", labels: ["rack": "c"])])
        _ = Scheduler().schedule(requests(3, service: "other"), on: &snap2, using: &rng)
        let q = Scheduler().schedule(try spreadRequests(4, spread: ["spread=node.labels.rack"], maxPerNode: 1), on: &snap2, using: &rng)
        #expect(counts(q) == ["id-a": 1, "id-b": 1, "id-c": 1] && q.filter { $0.nodeID == nil }.count == 1)
        // Old specs (JSON without the fields) decode with the defaults.
        let old = try Wire.decodeJSON(ServiceSpec.self, from: Array(#"{"name":"s","image":"i","replicas":2}"#.utf8))
        #expect(old.maxReplicasPerNode == 0 && old.placementPreferences.isEmpty && old.replicas == 2)
    }

    @Test func imagePlatformAgainstTheNode() throws {
        var snap = ClusterSnapshot(nodes: [node("pi4", arch: "arm64"), node("pi2", arch: "arm", variant: "v7"), node("pc", arch: "amd64")])
        var rng = SeededRandom(seed: 4)
        let p = Scheduler().schedule(requests(3, platforms: ["linux/arm/v7"]), on: &snap, using: &rng)
        #expect(Set(p.compactMap(\.nodeID)) == ["id-pi2"])
        let q = Scheduler().schedule(requests(4, service: "multi", platforms: ["linux/arm64", "linux/amd64"]), on: &snap, using: &rng)
        #expect(Set(q.compactMap(\.nodeID)) == ["id-pi4", "id-pc"])
        let r = Scheduler().schedule(requests(1, service: "v6", platforms: ["linux/arm/v6"]), on: &snap, using: &rng)
        #expect(r[0].nodeID == "id-pi2", "an armv7 node runs armv6 images")
        #expect(try PlatformSpec(parsing: "armhf") == PlatformSpec(architecture: "arm", variant: "v7"))
        #expect(try PlatformSpec(parsing: "linux/aarch64").architecture == "arm64")
        // A node record of an older version (arm64 without its variant) reads as the same platform.
        let old = try Wire.decodeJSON(PlatformSpec.self, from: Array(#"{"os":"linux","architecture":"arm64"}"#.utf8))
        let arm64 = try PlatformSpec(parsing: "linux/arm64")
        #expect(old == PlatformSpec(architecture: "arm64", variant: "v8") && old.runs(arm64))
        #expect(try !PlatformSpec(parsing: "linux/arm/v7").runs(PlatformSpec(parsing: "linux/arm64")))
        #expect(try PlatformSpec(parsing: "linux/arm/v7").runs(PlatformSpec(parsing: "armv6l")))
    }

    @Test func resourcesAreNeverOvercommitted() {
        var snap = ClusterSnapshot(nodes: [node("a", mem: 1 << 30), node("b", mem: 1 << 30), node("c", mem: 512 << 20)])
        var rng = SeededRandom(seed: 5)
        let p = Scheduler().schedule(requests(6, reserve: Resources(cpuMillis: 100, memory: 400 << 20)), on: &snap, using: &rng)
        #expect(counts(p) == ["id-a": 2, "id-b": 2, "id-c": 1])
        let unplaced = p.filter { $0.nodeID == nil }
        #expect(unplaced.count == 1)
        #expect(unplaced.first?.reason == "no suitable node (insufficient memory on 3 nodes)")
        for n in snap.nodes { #expect(n.reserved.memory <= n.record.capacity.memory) }
        let cpu = Scheduler().schedule(requests(1, service: "big", reserve: Resources(cpuMillis: 5000)), on: &snap, using: &rng)
        #expect(cpu[0].reason == "no suitable node (insufficient CPU on 3 nodes)")
    }

    /// The reason names every filter that excluded nodes, each node counted once.
    @Test func explainsUnplacedTasks() {
        let snap = ClusterSnapshot(nodes: [node("a", labels: ["zone": "b"]), node("b", labels: ["zone": "b"]),
                                           node("c", labels: ["zone": "a"], mem: 64 << 20), node("d", labels: ["zone": "a"], mem: 64 << 20),
                                           node("e", labels: ["zone": "a"], mem: 64 << 20), node("f", status: .down),
                                           node("g", availability: .drain), node("h", arch: "amd64")])
        let r = requests(1, reserve: Resources(memory: 1 << 30), constraints: ["node.labels.zone==a"], platforms: ["linux/arm64"])[0]
        #expect(Scheduler().explain(r, in: snap) ==
            "no suitable node (1 node down, 1 node draining, platform linux/arm64/v8 excludes 1 node, constraint node.labels.zone==a excludes 2 nodes, insufficient memory on 3 nodes)")
        #expect(Scheduler().explain(r, in: ClusterSnapshot(nodes: [])) == "no nodes in the cluster")
    }

    /// A task on cluster networks goes only to nodes in the overlay: a node
    /// that connected over loopback has no underlay address, so no network's
    /// devices reach it. A task on the cluster network alone goes anywhere.
    @Test func tasksOnClusterNetworksGoOnlyToNodesInTheOverlay() {
        var beside = node("beside")
        beside.record.address = "127.0.0.1:41000"
        var pi = node("pi")
        pi.record.address = "10.0.0.7:41000"
        var rng = SeededRandom(seed: 9)
        var networked = requests(4, service: "web")
        for i in networked.indices { networked[i].needsOverlay = true }
        var snap = ClusterSnapshot(nodes: [beside, pi])
        #expect(counts(Scheduler().schedule(networked, on: &snap, using: &rng)) == ["id-pi": 4])
        var plain = ClusterSnapshot(nodes: [beside, pi])
        #expect(counts(Scheduler().schedule(requests(4, service: "db"), on: &plain, using: &rng)) == ["id-beside": 2, "id-pi": 2])
        #expect(Scheduler().explain(networked[0], in: ClusterSnapshot(nodes: [beside])) ==
            "no suitable node (cluster networks unreachable from 1 node outside the overlay (connected over loopback or opted out))")
    }

    @Test func aFixedHostPortOncePerNode() {
        var snap = ClusterSnapshot(nodes: [node("a"), node("b"), node("c")])
        snap.nodes[2].hostPorts = ["tcp/8080"]   // another service's task holds it on c
        var rng = SeededRandom(seed: 5)
        let reqs = (1...3).map {
            SchedulingRequest(taskID: "web-\($0)", serviceID: "web", group: "web", reservations: .zero, constraints: [], platforms: [],
                              hostPorts: ["tcp/8080"])
        }
        let p = Scheduler().schedule(reqs, on: &snap, using: &rng)
        #expect(Set(p.compactMap(\.nodeID)) == ["id-a", "id-b"])
        #expect(p.last?.nodeID == nil)
        #expect(p.last?.reason == "no suitable node (host port 8080/tcp in use on 3 nodes)", "\(p.last?.reason ?? "")")
        // A port the node picks (no host port) holds nothing.
        var spec = ServiceSpec(name: "w", image: "i")
        spec.ports = ["80", "8080:80", "53:53/udp"]
        #expect(spec.hostPorts == ["tcp/8080", "udp/53"])
    }

    @Test func limitsAndPortsAreValidated() {
        func why(_ change: (inout ServiceSpec) -> Void) -> String {
            var s = ServiceSpec(name: "w", image: "i")
            change(&s)
            do { try s.validate(); return "" } catch { return error.description }
        }
        #expect(why { $0.ports = ["8080:80"]; $0.limits = Resources(cpuMillis: 500, memory: 64 << 20) } == "")
        #expect(why { $0.ports = ["8080:80"]; $0.network = "host" }.contains("published ports need the cluster network"))
        #expect(why { $0.ports = ["8080:80", "8080:81"] }.contains("host port 8080/tcp is published twice"))
        #expect(why { $0.ports = ["http"] }.contains("is not a port"))
        #expect(why { $0.limits.memory = 1 << 20 }.contains("at least 6 MiB"))
        #expect(why { $0.limits.memory = 64 << 20; $0.reservations.memory = 128 << 20 }.contains("reservation exceeds the memory limit"))
        #expect(why { $0.network = "bridge" }.contains("cluster, host or none"))
        #expect(ServiceSpec(name: "w", image: "i").network == "cluster")
    }

    @Test func deterministicWithASeed() {
        func run(_ seed: UInt64) -> [String?] {
            var snap = ClusterSnapshot(nodes: (1...10).map { node("n\($0)") })
            var rng = SeededRandom(seed: seed)
            return Scheduler().schedule(requests(7), on: &snap, using: &rng).map(\.nodeID)
        }
        #expect(run(7) == run(7))
        #expect(Set((1...20).map { run(UInt64($0)) }.map { $0.compactMap { $0 }.joined() }).count > 1, "ties go to the random source")
    }

    @Test func notReadyAndDrainingNodesGetNothing() {
        var snap = ClusterSnapshot(nodes: [node("a", status: .suspect), node("b", availability: .drain), node("c", status: .unknown), node("d")])
        var rng = SeededRandom(seed: 8)
        #expect(Set(Scheduler().schedule(requests(5), on: &snap, using: &rng).compactMap(\.nodeID)) == ["id-d"])
    }
}

@Suite struct SubnetTests {
    @Test func oneSubnetPerNodeLowestFirst() throws {
        let a = try SubnetAllocator(cluster: "10.88.0.0/16", prefix: 24)
        #expect(a.capacity == 256)
        #expect(a.allocate(leased: []) == "10.88.0.0/24")
        #expect(a.allocate(leased: ["10.88.0.0/24", "10.88.1.0/24"]) == "10.88.2.0/24")
        #expect(a.allocate(leased: ["10.88.1.0/24"]) == "10.88.0.0/24", "a released subnet is reused")
        #expect(a.owns("10.88.7.0/24") && !a.owns("10.89.0.0/24") && !a.owns("10.88.7.0/25"))
        let small = try SubnetAllocator(cluster: "192.168.0.0/28", prefix: 30)
        #expect(small.capacity == 4)
        #expect(small.allocate(leased: Set((0..<4).map { small.subnet($0).description })) == nil)
        #expect(throws: ClusterError.self) { try SubnetAllocator(cluster: "10.88.0.0/16", prefix: 12) }
        #expect(throws: ClusterError.self) { try SubnetAllocator(cluster: "10.88.0.1/16", prefix: 24) }
        #expect(throws: ClusterError.self) { try SubnetAllocator(cluster: "10.0.0.0/8", prefix: 30) }
        #expect(IPv4Network("10.88.3.0/24")?.description == "10.88.3.0/24")
        #expect(IPv4Network("300.1.1.0/24") == nil)
    }
}
