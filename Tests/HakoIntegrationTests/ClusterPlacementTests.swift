#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
#if canImport(HakoTestSupport)
import HakoTestSupport
#endif
import Testing

/// `node update` on the harness: labels an admin adds and removes and a
/// drain move a constrained service's real containers; `node ps` lists them.
@Suite(.needsRoot, .serialized)
final class ClusterPlacementTests {
    let h = ClusterHarness("cp", nodes: 3)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    func update(_ args: String...) {
        let r = h.cluster(["node", "update"] + args)
        #expect(r.status == 0, "node update \(args): \(r.stderr)")
        if r.status != 0 { h.failed = true }
    }

    @Test func nodeLabelsAndDrainMoveAConstrainedService() {
        let r = h.cluster("service", "create", "--no-resolve-image", "--name", "ssd", "--replicas", "2", "--stop-timeout", "1",
                          "--constraint", "node.labels.disk==ssd", "busybox:test", "sleep", "3600")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(h.eventually(10) { (self.h.tasks("ssd").first?["message"] as? String)?.contains("node.labels.disk==ssd excludes 3 nodes") == true })

        update("--label-add", "disk=ssd", "node2")
        #expect(h.eventually(30) { self.h.runningCount("ssd") == [0, 2, 0] }, "\(h.runningCount("ssd"))")
        let ps = h.cluster("node", "ps", "node2").out
        #expect(ps.contains("ssd.1") && ps.contains("ssd.2") && ps.contains("Running"), "\(ps)")
        let inspect = h.json("node", "inspect", "node2").first?["labels"] as? [String: String]
        #expect(inspect?["disk"] == "ssd" && inspect?["zone"] == "b", "the agent's labels stay beside the admin's: \(inspect ?? [:])")

        // A drain moves them to the other node with the label.
        update("--label-add", "disk=ssd", "node3")
        update("--availability", "drain", "node2")
        #expect(h.eventually(30) { self.h.runningCount("ssd") == [0, 0, 2] }, "\(h.runningCount("ssd"))")
        #expect(h.cluster("node", "ps", "node2").out.contains("Running") == false)

        // The label removed: the tasks stop (no node satisfies the constraint) and wait.
        update("--label-rm", "disk", "node3")
        #expect(h.eventually(30) { self.h.runningCount("ssd") == [0, 0, 0] }, "\(h.runningCount("ssd"))")
        #expect(h.eventually(10) { self.h.tasks("ssd").contains { ($0["message"] as? String)?.contains("1 node draining") == true } })
        // Active again: back on node2, which kept its label.
        update("--availability", "active", "node2")
        #expect(h.eventually(30) { self.h.runningCount("ssd") == [0, 2, 0] }, "\(h.runningCount("ssd"))")
        #expect(h.cluster("node", "update", "--label-rm", "nope", "node2").status != 0)

        h.cluster("service", "rm", "ssd")
        #expect(h.eventually(30) { self.h.runningCount("ssd").reduce(0, +) == 0 })
    }

    /// --mode global: a task on every node, gone from a drained one and back when it is active;
    /// gone from a node that leaves, and on a node that joins.
    @Test func globalServiceFollowsADrainAndAJoin() {
        let r = h.cluster("service", "create", "--no-resolve-image", "--name", "every", "--mode", "global", "--stop-timeout", "1",
                          "--wait", "--timeout", "60s", "busybox:test", "sleep", "3600")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(h.runningCount("every") == [1, 1, 1])
        let ls = h.cluster("service", "ls").out
        #expect(ls.contains("global") && ls.contains("3/3"), "\(ls)")
        update("--availability", "drain", "node1")
        #expect(h.eventually(30) { self.h.runningCount("every") == [0, 1, 1] }, "\(h.runningCount("every"))")
        #expect(h.cluster("service", "ls").out.contains("2/2"))
        update("--availability", "active", "node1")
        #expect(h.eventually(30) { self.h.runningCount("every") == [1, 1, 1] }, "\(h.runningCount("every"))")
        #expect(h.cluster("service", "scale", "every=5").status != 0)

        // node3 leaves the cluster: the service counts two nodes. The machine then joins again as a new
        // node (a fresh identity, its old container cleared by hand): the service gets a task there.
        h.killAgent(2)
        #expect(h.cluster("node", "rm", "--force", "node3").status == 0)
        #expect(h.eventually(15) { self.h.cluster("service", "ls").out.contains("2/2") }, "\(h.cluster("service", "ls").out)")
        let left = h.running("every")[2]
        if !left.isEmpty { _ = h.onNode(h.nodes[2], ["rm", "-f"] + left) }
        try? FileManager.default.removeItem(atPath: h.nodes[2].dir + "/state")
        h.startAgent(2, join: h.cluster("token", "-q").out)
        #expect(h.eventually(30) { self.h.runningCount("every") == [1, 1, 1] && self.h.cluster("service", "ls").out.contains("3/3") },
                "the joined node gets the global service's task: \(h.runningCount("every")) \(h.cluster("service", "ls").out)")
        h.cluster("service", "rm", "every")
        #expect(h.eventually(30) { self.h.runningCount("every").reduce(0, +) == 0 })
    }
}
