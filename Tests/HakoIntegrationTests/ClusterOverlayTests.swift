#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// What the overlay promises (issue 7) beyond reachability, on the harness:
/// containers keep their own source address across nodes, their interfaces
/// take underlay MTU − 50, traffic crosses the underlay encapsulated, and the
/// overlay follows nodes leaving, agents restarting and tasks moving. Traffic
/// stays inside the harness's namespaces.
extension ClusterHarness {
    /// Runs in the node's network namespace (iputils, /sys of that namespace).
    func inNode(_ n: Node, _ argv: [String], timeout: Double = 20) -> Output {
        Subprocess.run(["/usr/sbin/ip", "netns", "exec", n.netns] + argv, timeout: timeout)
    }

    /// A counter of the node's VXLAN device ("tx_packets", "rx_packets").
    func vxlanCounter(_ n: Node, _ name: String) -> Int {
        Int(inNode(n, ["cat", "/sys/class/net/hako.vx4096/statistics/\(name)"]).stdout.trimmed) ?? -1
    }

    /// The overlay's entries on a node: permanent FDB entries with a remote, its
    /// neighbours on the VXLAN device, hako's routes (proto 104).
    func overlayEntries(_ n: Node) -> (fdb: [String], neigh: [String], routes: [String]) {
        func lines(_ tool: String, _ argv: [String]) -> [String] {
            Subprocess.run([tool, "-n", n.netns] + argv).stdout.split(separator: "\n").map(String.init)
        }
        return (lines("/usr/sbin/bridge", ["fdb", "show", "dev", "hako.vx4096"]).filter { $0.contains(" dst ") },
                lines("/usr/sbin/ip", ["-4", "neigh", "show", "dev", "hako.vx4096"]),
                lines("/usr/sbin/ip", ["-4", "route", "show", "proto", "104"]))
    }

    /// The PID of a container's first process (for nsenter into its network namespace).
    func containerPID(_ n: Node, _ id: String) -> Int? {
        let out = onNode(n, ["inspect", id]).stdout
        let all = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]
        return (all?.first?["State"] as? [String: Any])?["Pid"] as? Int
    }
}

extension ClusterNetworkTests {
    /// `addresses[i]`: the task on node i+1 (an httpd on 8080 whose CGI prints
    /// the peer's address); `first`: node 1's container.
    func overlayDataPath(first: String, addresses: [String]) {
        let n1 = h.nodes[0]
        // The containers' interfaces take underlay MTU − 50.
        let underlay = Int(h.inNode(n1, ["cat", "/sys/class/net/eth0/mtu"]).stdout.trimmed) ?? 0
        #expect(underlay >= 1280, "the underlay link's MTU: \(underlay)")
        let eth0 = h.onNode(n1, ["exec", first, "cat", "/sys/class/net/eth0/mtu"]).stdout.trimmed
        #expect(eth0 == String(underlay - 50), "the container's eth0 MTU \(eth0), underlay \(underlay)")
        let bridge = h.inNode(n1, ["cat", "/sys/class/net/hakoc0/mtu"]).stdout.trimmed
        #expect(bridge == String(underlay - 50), "the node bridge's MTU \(bridge)")

        let mine = addresses[0]
        let pid = h.containerPID(n1, first)
        #expect(pid != nil, "node1's container has a PID")
        for ip in addresses.dropFirst() {
            // Ping, the traffic encapsulated: the VXLAN device's counters rise with it.
            let tx = h.vxlanCounter(n1, "tx_packets"), rx = h.vxlanCounter(n1, "rx_packets")
            let ping = h.onNode(n1, ["exec", first, "ping", "-c", "3", "-W", "2", ip])
            #expect(ping.stdout.contains("3 packets received"), "node1's container → \(ip): \(ping.stdout) \(ping.stderr)")
            #expect(h.vxlanCounter(n1, "tx_packets") >= tx + 3 && h.vxlanCounter(n1, "rx_packets") >= rx + 3,
                    "the pings crossed hako.vx4096 (tx \(tx)→\(h.vxlanCounter(n1, "tx_packets")), rx \(rx)→\(h.vxlanCounter(n1, "rx_packets")))")

            // TCP: the receiving container sees node 1's container's own address (no masquerade inside the cluster).
            var body = ""
            let answered = h.eventually(15) {
                body = self.h.onNode(n1, ["exec", first, "sh", "-c", "printf 'GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \(ip) 8080"]).stdout
                return body.contains("peer ")
            }
            let peer = body.split(separator: "\n").first { $0.hasPrefix("peer ") }.map {
                String($0.dropFirst(5)).replacingOccurrences(of: "[::ffff:", with: "").replacingOccurrences(of: "]", with: "").trimmed
            }
            #expect(answered && peer == mine, "\(ip) saw the connection from \(peer ?? "?"), node1's container is \(mine): \(body)")

            // A DF ping of underlay MTU − 78 bytes fits the overlay, one byte more does not:
            // from the container (its eth0) and from the node (the VXLAN device).
            if let pid {
                let inContainer = ["/usr/bin/nsenter", "-t", String(pid), "-n", "--", "/usr/bin/ping", "-c", "1", "-W", "2", "-M", "do", "-s"]
                let fits = Subprocess.run(inContainer + [String(underlay - 78), ip], timeout: 10)
                #expect(fits.status == 0, "DF \(underlay - 78) bytes from the container to \(ip): \(fits.stdout) \(fits.stderr)")
                let tooBig = Subprocess.run(inContainer + [String(underlay - 77), ip], timeout: 10)
                #expect(tooBig.status != 0, "DF \(underlay - 77) bytes must not fit: \(tooBig.stdout)")
            }
            let fromNode = ["/usr/bin/ping", "-c", "1", "-W", "2", "-M", "do", "-s"]
            #expect(h.inNode(n1, fromNode + [String(underlay - 78), ip]).status == 0, "DF \(underlay - 78) bytes from node1 to \(ip)")
            #expect(h.inNode(n1, fromNode + [String(underlay - 77), ip]).status != 0, "DF \(underlay - 77) bytes from node1 must not fit")
        }
        // Leaving the cluster CIDR is still masqueraded: the engine's rule says so.
        let rules = h.inNode(n1, ["/usr/sbin/nft", "list", "table", "ip", "hako"]).stdout
        #expect(rules.contains("ip daddr != 10.88.0.0/16 oifname != \"hakoc0\" masquerade"), "\(rules)")
    }
}

/// Nodes leaving, agents restarting, tasks moving: the overlay, the routing
/// mesh and the service names follow.
@Suite(.needsRoot, .serialized)
final class ClusterOverlayTests {
    let h = ClusterHarness("co", nodes: 3)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    func address(_ service: String) -> String? { h.tasks(service).first { $0["state"] as? String == "running" }?["address"] as? String }

    @Test func theOverlayFollowsNodesAgentsAndTasks() {
        let serve = "mkdir -p /tmp/www && echo \"who $(hostname)\" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
        func create(_ args: [String]) -> Bool {
            let r = h.cluster(["service", "create", "--no-resolve-image", "--stop-timeout", "1", "--wait", "--timeout", "60s"] + args, timeout: 90)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            return r.status == 0
        }
        guard create(["--name", "who", "--replicas", "2", "--ingress", "9091:8080", "--constraint", "node.name!=node3", "busybox:test", "sh", "-c", serve]),
              create(["--name", "client", "--constraint", "node.name==node1", "busybox:test", "sleep", "3600"]),
              // Zone a is nodes 1 and 3; spread puts it on node3 (node1 runs two tasks already), a drain moves it to node1.
              create(["--name", "named", "--constraint", "node.labels.zone==a", "busybox:test", "sleep", "3600"]) else { h.failed = true; return }
        #expect(h.runningCount("named") == [0, 0, 1], "\(h.tasks("named"))")

        // Every node has the other two's three entries.
        for n in h.nodes {
            #expect(h.eventually(10) { let e = self.h.overlayEntries(n); return e.fdb.count == 2 && e.neigh.count == 2 && e.routes.count == 2 },
                    "\(n.name): \(h.overlayEntries(n))")
        }

        // The routing mesh: every node's ingress port reaches both tasks (distinct hostnames).
        for n in h.nodes {
            var seen: Set<String> = []
            _ = h.eventually(15) {
                let body = self.h.underlay(["/usr/bin/curl", "-sS", "--max-time", "3", "http://\(n.address):9091/"]).stdout
                if body.hasPrefix("who ") { seen.insert(body.trimmed) }
                return seen.count >= 2
            }
            #expect(seen.count == 2, "\(n.name):9091 reached \(seen)")
        }

        // A service name resolves from a container on another node, and follows its task when it moves.
        guard let client = h.running("client").first?.first, let before = address("named") else {
            Issue.record("no client or named task: \(h.tasks("client")) \(h.tasks("named"))"); h.failed = true; return
        }
        func resolves(_ ip: String) -> Bool {
            h.eventually(15) { self.h.onNode(self.h.nodes[0], ["exec", client, "nslookup", "named"]).stdout.contains("Address: \(ip)") }
        }
        #expect(resolves(before), "named → \(before) from node1")
        #expect(h.onNode(h.nodes[0], ["exec", client, "ping", "-c", "1", "-W", "2", before]).status == 0, "node1 → node3's task")

        // An agent restart keeps connectivity and creates no duplicate entry.
        let entries = h.overlayEntries(h.nodes[0])
        h.killAgent(0)
        h.startAgent(0)
        #expect(h.eventually(20) { self.h.readyNodes() == 3 })
        Thread.sleep(forTimeInterval: 1.5)   // a peer-map push after the rejoin has been reconciled
        let after = h.overlayEntries(h.nodes[0])
        #expect(after.fdb.sorted() == entries.fdb.sorted() && after.neigh.sorted() == entries.neigh.sorted() && after.routes.sorted() == entries.routes.sorted(),
                "before \(entries), after \(after)")
        #expect(h.onNode(h.nodes[0], ["exec", client, "ping", "-c", "1", "-W", "2", before]).status == 0, "still reachable after the restart")

        // Drain node3: the task moves, the name follows.
        #expect(h.cluster("node", "drain", "node3").status == 0)
        #expect(h.eventually(30) { self.h.runningCount("named")[2] == 0 && self.address("named").map { $0 != before } == true }, "\(h.tasks("named"))")
        if let moved = address("named") {
            #expect(resolves(moved), "named → \(moved) after the move")
        }

        // node3 leaves: its entries go from every other node within 3 s.
        let node3Subnet = h.json("node", "ls").first { $0["name"] as? String == "node3" }?["subnet"] as? String ?? "?"
        h.killAgent(2)
        let start = monotonicSeconds()
        #expect(h.cluster("node", "rm", "--force", "node3").status == 0)
        for n in h.nodes.prefix(2) {
            let gone = h.eventually(3 - (monotonicSeconds() - start)) {
                let e = self.h.overlayEntries(n)
                return e.fdb.count == 1 && e.neigh.count == 1 && e.routes.count == 1 && !e.routes.contains { $0.hasPrefix(node3Subnet) }
            }
            #expect(gone, "\(n.name) still holds node3's entries after \(monotonicSeconds() - start) s: \(h.overlayEntries(n))")
        }
        for s in ["who", "client", "named"] { h.cluster("service", "rm", s) }
        #expect(h.eventually(20) { ["who", "client", "named"].allSatisfy { self.h.runningCount($0).reduce(0, +) == 0 } })
    }
}
