#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Services on the harness with their image from the registry on the
/// underlay: each node pulls it, runs its task on the node's own /24 of the
/// cluster CIDR, publishes its port on the node's address, and applies the
/// task's limits. Traffic stays inside the harness's namespaces.
@Suite(.needsRoot, .serialized)
final class ClusterNetworkTests {
    let h = ClusterHarness("cn", nodes: 3, registry: true)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    /// node name → its subnet ("10.88.1.0/24"), as the coordinator leased it.
    func subnets() -> [String: String] {
        Dictionary(h.json("node", "ls").compactMap { n in (n["name"] as? String).flatMap { name in (n["subnet"] as? String).map { (name, $0) } } },
                   uniquingKeysWith: { a, _ in a })
    }

    @Test func aRegistryImageOnEveryNodeWithItsSubnetPortAndLimits() throws {
        let image = h.pushBusybox(as: "web:1")
        // index.html names the task; cgi-bin/peer prints the address the connection came from.
        let serve = "mkdir -p /tmp/www/cgi-bin && echo \"web $(hostname)\" > /tmp/www/index.html"
            + " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho peer $REMOTE_ADDR\\n' > /tmp/www/cgi-bin/peer"
            + " && chmod +x /tmp/www/cgi-bin/peer && exec httpd -f -p 8080 -h /tmp/www"
        let r = h.cluster(["service", "create", "--name", "web", "--replicas", "3", "--publish", "8080:8080", "--limit-memory", "48m", "--limit-cpu", "0.5",
                           "--stop-timeout", "1", "--wait", "--timeout", "90s", image, "sh", "-c", serve], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { h.failed = true; return }
        #expect(!r.stderr.contains("warning"), "the platforms were read from the registry: \(r.stderr)")

        // The platforms came from the image's manifest in the registry.
        let inspect = h.cluster("service", "inspect", "web")
        let spec = (try? JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])?["spec"] as? [String: Any]
        let platforms = spec?["platforms"] as? [String] ?? []
        #expect(platforms.count == 1 && platforms[0].hasPrefix("linux/"), "\(inspect.stdout)")

        // A fixed host port: one task per node, so exactly one on each.
        let running = h.running("web")
        #expect(running.map(\.count) == [1, 1, 1], "\(running)")
        let leased = subnets()
        var addresses: [String] = []   // each node's task, "10.88.N.x"
        for (i, n) in h.nodes.enumerated() {
            guard let id = running[i].first, let subnet = leased[n.name] else { Issue.record("\(n.name): no task or subnet"); continue }
            // The image came from the registry: each node pulled it.
            let images = h.onNode(n, ["images"]).stdout
            #expect(images.contains("\(ClusterHarness.registryAddress)/web"), "\(images)")

            // Inside the container: its address is in its node's /24, its gateway the .1.
            let prefix = String(subnet.dropLast("0/24".count))   // "10.88.1."
            let addr = h.onNode(n, ["exec", id, "ip", "-4", "-o", "addr", "show", "eth0"])
            #expect(addr.stdout.contains("inet \(prefix)") && addr.stdout.contains("/24"), "\(n.name) \(subnet): \(addr.stdout) \(addr.stderr)")
            if let r = addr.stdout.range(of: "inet ") {
                addresses.append(String(addr.stdout[r.upperBound...].prefix { $0 != "/" }))
            }
            let route = h.onNode(n, ["exec", id, "ip", "route"])
            #expect(route.stdout.contains("default via \(prefix)1 dev eth0"), "\(route.stdout)")
            let fib = h.onNode(n, ["exec", id, "cat", "/proc/net/fib_trie"]).stdout
            #expect(fib.contains(prefix), "the kernel's own table in the container names the node's subnet")

            // The published port answers on the node's underlay address.
            var body = ""
            let answered = h.eventually(15) {
                body = self.h.underlay(["/usr/bin/curl", "-sS", "--max-time", "3", "http://\(n.address):8080/"]).stdout
                return body.hasPrefix("web ")
            }
            #expect(answered, "\(n.name) \(n.address):8080 answered \(body)")

            // The memory limit: in the task's cgroup, and felt inside the container.
            let cg = try? String(contentsOfFile: "/sys/fs/cgroup/memory/\(n.cgroupParent)/\(id)/memory.limit_in_bytes", encoding: .utf8)
            #expect(cg?.trimmed == String(48 << 20), "\(cg ?? "no cgroup file")")
            let quota = try? String(contentsOfFile: "/sys/fs/cgroup/cpu/\(n.cgroupParent)/\(id)/cpu.cfs_quota_us", encoding: .utf8)
            #expect(quota?.trimmed == "50000", "half a CPU: \(quota ?? "no cgroup file")")
            let small = h.onNode(n, ["exec", id, "sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null; echo rc=$?"]).stdout
            #expect(small.contains("rc=0"), "\(small)")
            let big = h.onNode(n, ["exec", id, "sh", "-c", "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null; echo rc=$?"]).stdout
            #expect(big.contains("rc=137"), "a 200 MB buffer is killed under a 48 MB limit: \(big)")
        }

        // The overlay: each node holds a VXLAN device, and a container on node 1
        // reaches the containers on nodes 2 and 3 at their own addresses.
        for n in h.nodes {
            let vx = Subprocess.run(["/usr/sbin/ip", "-n", n.netns, "-d", "link", "show", "hako.vx4096"]).stdout
            #expect(vx.contains("vxlan id 4096"), "\(n.name): \(vx)")
        }
        if addresses.count == 3, let first = running.first?.first {
            for ip in addresses.dropFirst() {
                var body = ""
                let reached = h.eventually(15) {
                    // busybox-static's wget crashes in glibc's static NSS; nc speaks the HTTP.
                    body = self.h.onNode(self.h.nodes[0], ["exec", first, "sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \(ip) 8080"]).stdout
                    return body.contains("\r\nweb ") || body.contains("\nweb ")
                }
                #expect(reached, "node1's container → \(ip):8080 across the overlay: \(body)")
            }
            overlayDataPath(first: first, addresses: addresses)
        } else {
            Issue.record("task addresses: \(addresses)")
        }

        // service ps shows each task's published port.
        let tasks = h.tasks("web")
        #expect(tasks.count == 3 && tasks.allSatisfy { ($0["ports"] as? [String])?.first == "0.0.0.0:8080->8080/tcp" }, "\(tasks)")

        // A fourth replica finds no node with the port free, and says so.
        h.cluster("service", "scale", "web=4")
        #expect(h.eventually(10) {
            self.h.tasks("web").contains { ($0["message"] as? String)?.contains("host port 8080/tcp in use on 3 nodes") == true }
        }, "\(h.tasks("web"))")
        #expect(h.runningCount("web") == [1, 1, 1])
        h.cluster("service", "rm", "web")
        #expect(h.eventually(20) { self.h.runningCount("web") == [0, 0, 0] })
    }

    /// The routing mesh: one task, on node 1; its ingress port answers on
    /// every node's address, nodes 2 and 3 forwarding over the overlay.
    @Test func theRoutingMeshAnswersOnEveryNode() {
        let serve = "mkdir -p /tmp/www && echo \"mesh $(hostname)\" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "mesh", "--replicas", "1", "--ingress", "9090:8080",
                           "--constraint", "node.name==node1", "--stop-timeout", "1", "--wait", "--timeout", "60s",
                           "busybox:test", "sh", "-c", serve], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { h.failed = true; return }
        #expect(h.runningCount("mesh") == [1, 0, 0])
        let task = h.tasks("mesh").first
        #expect((task?["address"] as? String)?.hasPrefix("10.88.") == true, "the agent reported the task's address: \(task ?? [:])")
        // Service names: the container asks its node's responder (its gateway) for "mesh" and "mesh.1".
        if let address = task?["address"] as? String, let id = h.running("mesh").first?.first {
            var answer = ""
            let resolved = h.eventually(15) {
                answer = self.h.onNode(self.h.nodes[0], ["exec", id, "sh", "-c", "cat /etc/resolv.conf; nslookup mesh; nslookup mesh.1"]).stdout
                return answer.components(separatedBy: "Address: \(address)").count == 3
            }
            #expect(resolved, "mesh and mesh.1 resolve to \(address): \(answer)")
            #expect(answer.contains("nameserver 10.88.0.1"), "\(answer)")
        }
        for n in h.nodes {
            var body = ""
            let answered = h.eventually(15) {
                body = self.h.underlay(["/usr/bin/curl", "-sS", "--max-time", "3", "http://\(n.address):9090/"]).stdout
                return body.hasPrefix("mesh ")
            }
            #expect(answered, "\(n.name) \(n.address):9090 → the task on node1: \(body)")
        }
        h.cluster("service", "rm", "mesh")
        #expect(h.eventually(20) { self.h.runningCount("mesh") == [0, 0, 0] })
        // Without a task, no node answers the port any more.
        #expect(h.eventually(10) {
            self.h.underlay(["/usr/bin/curl", "-sS", "--max-time", "2", "http://\(self.h.nodes[1].address):9090/"]).status != 0
        })
    }
}
