#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Load-aware placement end to end: each node's load is the CPU its own
/// cgroup subtree uses (agent.toml `load_cgroup`), so a node running a CPU
/// burner is seen as loaded while the others, on the same machine, are not.
@Suite(.needsRoot, .serialized)
final class ClusterLoadTests {
    let h = ClusterHarness("ld", nodes: 3, loadAware: true)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    func cpuLoad(_ node: String) -> Double {
        guard let n = h.json("node", "ls").first(where: { $0["name"] as? String == node }) else { return -1 }
        return (n["load"] as? [String: Any])?["cpu"] as? Double ?? -1
    }

    /// A burner on node1 (a container of the node's own engine, under its
    /// cgroup parent): node1 reports the load, gets fewer of six new tasks
    /// than each idle node, and `service ps` says why. The events and the
    /// explanations outlive a coordinator restart.
    @Test func aLoadedNodeGetsFewerNewTasks() {
        let burner = h.onNode(h.nodes[0], ["run", "-d", "--name", "burner", "--network", "none", "busybox:test", "sh", "-c", "while :; do :; done & while :; do :; done"])
        #expect(burner.status == 0, "\(burner.stderr)")
        // The load is smoothed over ~10 s: wait until node1 stands out (two
        // busy loops against the machine's CPUs, shared with whatever else runs).
        let seen = h.eventually(40) { self.cpuLoad("node1") > 0.15 && self.cpuLoad("node2") < 0.05 && self.cpuLoad("node3") < 0.05 }
        let loads = ["node1", "node2", "node3"].map { cpuLoad($0) }
        print("cluster load: node cpu loads \(loads.map { String(format: "%.2f", $0) }) before placing")
        #expect(seen, "node1 loaded, the others idle: \(loads)")
        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "spread", "--replicas", "6", "--stop-timeout", "1",
                           "--wait", "--timeout", "60s", "busybox:test", "sleep", "3600"])
        #expect(r.status == 0, "\(r.stderr)")
        let counts = h.runningCount("spread")
        print("cluster load: 6 replicas placed \(counts) (node1 loaded)")
        #expect(counts.reduce(0, +) == 6 && counts[0] < counts[1] && counts[0] < counts[2], "the loaded node got fewer: \(counts)")
        // Why: each task's placement names its node's CPU load and the next best node.
        let tasks = h.tasks("spread")
        let notes = tasks.compactMap { $0["placement"] as? String }
        #expect(notes.count == 6 && notes.allSatisfy { $0.hasPrefix("score ") && $0.contains("cpu ") }, "\(notes)")
        let table = h.cluster("service", "ps", "spread", "--no-trunc").out
        #expect(table.contains("PLACEMENT") && table.contains("score "), "\(table)")
        print("cluster load: service ps:\n\(table)")
        // A restarted coordinator still has the events and the explanations.
        let assigned = h.json("events").filter { $0["kind"] as? String == "task" && $0["action"] as? String == "assigned" }.count
        h.killCoordinator()
        h.startCoordinator()
        let after = h.json("events").filter { $0["kind"] as? String == "task" && $0["action"] as? String == "assigned" }.count
        #expect(assigned >= 6 && after == assigned, "events kept across the restart: \(assigned) before, \(after) after")
        #expect(h.tasks("spread").compactMap { $0["placement"] as? String }.sorted() == notes.sorted())
        _ = h.onNode(h.nodes[0], ["rm", "-f", "burner"])
        h.cluster("service", "rm", "spread")
        #expect(h.eventually(30) { self.h.runningCount("spread").reduce(0, +) == 0 })
    }
}
