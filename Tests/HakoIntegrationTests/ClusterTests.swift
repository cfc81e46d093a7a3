#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// The cluster on the harness: three agents in their own network namespaces,
/// real TLS, real containers, real failures (kill -9, links down). The ground
/// truth is each node's own `hako ps`.
@Suite(.needsRoot, .serialized)
final class ClusterTests {
    let h = ClusterHarness("cl", nodes: 3)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    /// A service whose containers stop within a second.
    func create(_ name: String, replicas: Int, wait: Bool = true, extra: [String] = []) {
        var args = ["service", "create", "--no-resolve-image", "--name", name, "--replicas", String(replicas), "--stop-timeout", "1"] + extra
        if wait { args += ["--wait", "--timeout", "60s"] }
        let r = h.cluster(args + ["busybox:test", "sleep", "3600"])
        #expect(r.status == 0, "\(r.stderr)")
        if r.status != 0 { h.failed = true }
    }

    func remove(_ name: String) {
        h.cluster("service", "rm", name)
        #expect(h.eventually(30) { self.h.runningCount(name).reduce(0, +) == 0 }, "service \(name) left containers running")
    }

    @Test func placementSpreadAndScaling() {
        create("web", replicas: 3)
        #expect(h.runningCount("web") == [1, 1, 1], "one replica per node")
        #expect(h.cluster("service", "scale", "web=6", "--wait").status == 0)
        #expect(h.runningCount("web") == [2, 2, 2])
        // --wait returns once the tasks scaled away have stopped too.
        #expect(h.cluster("service", "scale", "web=2", "--wait").status == 0)
        #expect(h.runningCount("web").reduce(0, +) == 2, "\(h.runningCount("web"))")
        // Constraints: zone a is node1 and node3.
        create("zoned", replicas: 4, extra: ["--constraint", "node.labels.zone==a"])
        #expect(h.runningCount("zoned") == [2, 0, 2])
        // An impossible constraint: pending, with the reason.
        create("nowhere", replicas: 1, wait: false, extra: ["--constraint", "node.labels.zone==c"])
        #expect(h.eventually(10) { (self.h.tasks("nowhere").first?["message"] as? String)?.contains("constraint node.labels.zone==c excludes 3 nodes") == true })
        let table = h.cluster("service", "ps", "nowhere").out
        #expect(table.contains("Pending") && table.contains("excludes 3 nodes"), "\(table)")
        #expect(h.cluster("service", "scale", "web=0", "--wait").status == 0)
        #expect(h.runningCount("web") == [0, 0, 0], "scale web=0 --wait returned with containers running")
        for s in ["web", "zoned", "nowhere"] { remove(s) }
    }

    /// kill -9 of an agent: its containers keep running; restarted, it adopts them: nothing restarts.
    @Test func agentKillKeepsContainersAndReadopts() {
        create("keep", replicas: 3)
        let before = h.running("keep")
        let tasksBefore = Set(h.tasks("keep", all: true).compactMap { $0["id"] as? String })
        h.killAgent(1)
        usleep(600_000)
        #expect(h.running("keep")[1] == before[1], "the containers outlive their agent")
        h.startAgent(1)
        #expect(h.eventually(20) { self.h.readyNodes() == 3 })
        usleep(1_000_000)
        #expect(h.running("keep") == before, "the same containers, none restarted")
        #expect(Set(h.tasks("keep", all: true).compactMap { $0["id"] as? String }) == tasksBefore, "no task was replaced")
        let restarts = Subprocess.run([Binaries.hako, "inspect"] + before[1], env: h.nodes[1].env).stdout
        #expect(restarts.contains("\"RestartCount\" : 0"), "\(restarts.prefix(200))")
        remove("keep")
    }

    /// An agent killed and its node cut off: after the grace period its task
    /// runs elsewhere. Back again, the node stops the old task: no duplicate.
    @Test func failoverAfterAgentKillAndLinkDown() {
        create("fo", replicas: 3)
        let lostContainer = h.running("fo")[2]
        #expect(lostContainer.count == 1)
        let t0 = monotonicSeconds()
        h.killAgent(2)
        h.link(2, up: false)
        let moved = h.eventually(20) { let c = self.h.runningCount("fo"); return c[0] + c[1] == 3 }
        let failover = monotonicSeconds() - t0
        #expect(moved, "the lost replica came back on another node (\(h.runningCount("fo")))")
        print("cluster failover: \(String(format: "%.2f", failover)) s from kill -9 + link down to the replacement running")
        #expect(h.running("fo")[2] == lostContainer, "the cut-off node's container still runs (nobody could stop it)")
        h.link(2, up: true)
        h.startAgent(2)
        #expect(h.eventually(20) { self.h.runningCount("fo") .reduce(0, +) == 3 && self.h.runningCount("fo")[2] == 0 },
                "no duplicate survives: \(h.runningCount("fo"))")
        #expect(h.eventually(10) { self.h.readyNodes() == 3 })
        remove("fo")
    }

    /// A partition (link down, agent alive): moved after the grace period, healed without duplicates.
    @Test func partitionHealsWithoutDuplicates() {
        create("part", replicas: 3)
        h.link(0, up: false)
        #expect(h.eventually(20) { let c = self.h.runningCount("part"); return c[1] + c[2] == 3 })
        #expect(h.runningCount("part")[0] == 1, "the partitioned node keeps its task while cut off")
        h.link(0, up: true)
        let healed = monotonicSeconds()
        // The returning node kills its replaced copy at once (no stop grace).
        #expect(h.eventually(30) { self.h.runningCount("part")[0] == 0 }, "\(h.runningCount("part"))")
        print("cluster partition: the old copy gone \(String(format: "%.2f", monotonicSeconds() - healed)) s after the link came back")
        #expect(h.runningCount("part").reduce(0, +) == 3)
        let live = h.tasks("part").filter { $0["desired"] as? String == "running" }
        #expect(live.count == 3 && Set(live.compactMap { $0["slot"] as? Int }) == [1, 2, 3])
        remove("part")
    }

    /// The coordinator killed in the middle of scaling to 20: restarted, the cluster converges to exactly 20.
    @Test func coordinatorKillDuringScaleUp() {
        create("big", replicas: 1)
        #expect(h.cluster("service", "scale", "big=20").status == 0)
        usleep(150_000)
        h.killCoordinator()
        let during = h.runningCount("big").reduce(0, +)
        h.startCoordinator()
        // Converged: 20 running containers, 20 tasks wanted, each slot once.
        let converged = h.eventually(60) {
            let live = self.h.tasks("big").filter { $0["desired"] as? String == "running" && $0["state"] as? String == "running" }
            return self.h.runningCount("big").reduce(0, +) == 20 && live.count == 20 && Set(live.compactMap { $0["slot"] as? Int }).count == 20
        }
        #expect(converged, "running: \(h.runningCount("big")) (\(during) when killed)")
        usleep(1_500_000)
        #expect(h.runningCount("big").reduce(0, +) == 20, "exactly 20, and it stays so")
        let counts = h.runningCount("big")
        #expect(counts.max()! - counts.min()! <= 1, "still spread: \(counts)")
        remove("big")
    }

    @Test func nodesEventsAndLogs() {
        let nodes = h.json("node", "ls")
        #expect(nodes.count == 3)
        #expect(Set(nodes.compactMap { $0["subnet"] as? String }) == ["10.88.0.0/24", "10.88.1.0/24", "10.88.2.0/24"])
        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "talk", "--replicas", "2", "--wait", "--stop-timeout", "1", "busybox:test",
                           "sh", "-c", "echo hello from $(hostname); sleep 3600"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(h.eventually(10) { self.h.cluster("service", "logs", "talk").out.components(separatedBy: "hello from").count == 3 })
        let events = h.cluster("events").out
        #expect(events.contains("node joined") && events.contains("service created talk"), "\(events.suffix(400))")
        // Drain moves the tasks off a node.
        #expect(h.cluster("node", "drain", "node1").status == 0)
        #expect(h.eventually(20) { let c = self.h.runningCount("talk"); return c[0] == 0 && c.reduce(0, +) == 2 })
        #expect(h.cluster("node", "activate", "node1").status == 0)
        remove("talk")
    }
}
