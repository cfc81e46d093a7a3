#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// A service with a health check on the harness: a replica made unhealthy
/// (its check file removed) leaves the routing mesh, is failed and replaced
/// on some node. Traffic stays inside the harness's namespaces.
@Suite(.needsRoot, .serialized)
final class ClusterHealthTests {
    let h = ClusterHarness("hh", nodes: 3)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    /// Who answered the mesh port on each node ("hc <hostname>"), once each.
    func answers() -> Set<String> {
        var out = Set<String>()
        for n in h.nodes {
            let r = h.underlay(["/usr/bin/curl", "-sS", "--max-time", "2", "http://\(n.address):9191/"])
            if r.status == 0 { out.insert(r.out) }
        }
        return out
    }

    @Test func anUnhealthyReplicaLeavesTheMeshAndIsReplaced() {
        let serve = "mkdir -p /tmp/www && echo \"hc $(hostname)\" > /tmp/www/index.html && touch /tmp/www/ok && exec httpd -f -p 8080 -h /tmp/www"
        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "hc", "--replicas", "2", "--ingress", "9191:8080",
                           "--health-cmd", "test -f /tmp/www/ok", "--health-interval", "500ms", "--health-retries", "2",
                           "--restart-delay", "0s", "--stop-timeout", "1", "--wait", "--timeout", "60s",
                           "busybox:test", "sh", "-c", serve], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { h.failed = true; return }
        #expect(h.eventually(20) { self.h.tasks("hc").allSatisfy { $0["health"] as? String == "healthy" } }, "\(h.tasks("hc"))")
        let before = h.tasks("hc")
        // Both replicas answer through the mesh (any node, round-robin).
        var seen = Set<String>()
        #expect(h.eventually(20) { seen.formUnion(self.answers()); return seen.count == 2 }, "\(seen)")

        // Replica 1's check starts failing.
        let sick = before.first { $0["slot"] as? Int == 1 }
        let sickID = sick?["id"] as? String ?? ""
        let containerID = sick?["containerID"] as? String ?? ""
        let node = h.nodes.first { $0.name == sick?["nodeName"] as? String }
        guard let node, !containerID.isEmpty else { Issue.record("no replica 1: \(before)"); h.failed = true; return }
        let sickName = h.onNode(node, ["exec", containerID, "hostname"]).out
        let cut = monotonicSeconds()
        #expect(h.onNode(node, ["exec", containerID, "rm", "/tmp/www/ok"]).status == 0)

        // It leaves the mesh: soon no node forwards to it (interval × retries, plus a report).
        var leftAfter = 0.0
        #expect(h.eventually(20) {
            let a = (0..<4).reduce(into: Set<String>()) { acc, _ in acc.formUnion(self.answers()) }
            leftAfter = monotonicSeconds() - cut
            return !a.isEmpty && !a.contains("hc \(sickName)")
        }, "the unhealthy replica still gets traffic")
        // It is failed with the reason, and replaced by a healthy task.
        var replacedAfter = 0.0
        let replaced = h.eventually(30) {
            let all = self.h.tasks("hc", all: true)
            let failed = all.contains { $0["id"] as? String == sickID && $0["state"] as? String == "failed" && $0["message"] as? String == "unhealthy container" }
            let healthy = all.filter { $0["state"] as? String == "running" && $0["health"] as? String == "healthy" }
            replacedAfter = monotonicSeconds() - cut
            return failed && healthy.count == 2 && !healthy.contains { $0["id"] as? String == sickID }
        }
        #expect(replaced, "\(h.tasks("hc", all: true))")
        if !replaced { h.failed = true }
        print("cluster health: the unhealthy replica left the mesh \(String(format: "%.1f", leftAfter)) s and was replaced (healthy) \(String(format: "%.1f", replacedAfter)) s after its check began to fail (interval × retries: 1.0 s)")
        let ps = h.cluster("service", "ps", "hc", "--all").out
        #expect(ps.contains("unhealthy container"), "\(ps)")
        h.cluster("service", "rm", "hc")
        #expect(h.eventually(20) { self.h.runningCount("hc") == [0, 0, 0] })
    }
}
