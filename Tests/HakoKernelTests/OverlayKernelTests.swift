#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing
@testable import HakoNetwork

/// The overlay in a real kernel: three throwaway "nodes" on an underlay bridge,
/// one "container" behind each node's bridge (OverlayLab).
@Suite(.needsRoot, .serialized) struct OverlayKernelTests {
    /// Bytes sent by the VXLAN device (its tx counter, from the kernel's link stats).
    func txBytes(_ lab: OverlayLab, _ n: Int, _ dev: String = "hako.vx42") -> Int {
        let (_, out) = lab.inNS(lab.nodeNS(n), ["cat", "/sys/class/net/\(dev)/statistics/tx_bytes"])
        return Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    func lines(_ lab: OverlayLab, _ n: Int, _ argv: [String]) -> [String] {
        lab.inNS(lab.nodeNS(n), argv).1.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    @Test func containersReachEachOtherAcrossNodes() throws {
        let lab = OverlayLab(tag: "c")
        try lab.up()
        #expect(try lab.reconcileAll() == [6, 6, 6], "three entries per peer on every node")

        // The device as configured: VNI, port, local address, no learning, MTU 1500 − 50.
        let detail = lab.inNS(lab.nodeNS(1), ["ip", "-d", "link", "show", "hako.vx42"]).1
        for want in ["mtu 1450", "vxlan id 42 local 172.31.252.1 dev eth0", "dstport 4789", "nolearning", "link/ether 0e:48:ac:1f:fc:01"] {
            #expect(detail.contains(want), "missing \(want): \(detail)")
        }
        #expect(lab.inNS(lab.nodeNS(1), ["ip", "-o", "link", "show", "hkbr0"]).1.contains("mtu 1450"))
        #expect(lab.inNS(lab.ctrNS(1), ["ip", "-o", "link", "show", "eth0"]).1.contains("mtu 1450"))
        #expect(lines(lab, 1, ["bridge", "fdb", "show", "dev", "hako.vx42"]).filter { $0.contains(" dst ") }.sorted()
                == ["0e:48:ac:1f:fc:02 dst 172.31.252.2 self permanent", "0e:48:ac:1f:fc:03 dst 172.31.252.3 self permanent"])
        #expect(lines(lab, 1, ["ip", "neigh", "show", "dev", "hako.vx42"]).sorted()
                == ["10.77.2.0 lladdr 0e:48:ac:1f:fc:02 PERMANENT", "10.77.3.0 lladdr 0e:48:ac:1f:fc:03 PERMANENT"])
        #expect(lines(lab, 1, ["ip", "route", "show", "dev", "hako.vx42"]).sorted()
                == ["10.77.2.0/24 via 10.77.2.0 proto 104 onlink", "10.77.3.0/24 via 10.77.3.0 proto 104 onlink"])

        // ping and TCP, container on node 1 → containers on nodes 2 and 3, through the VXLAN device
        let before = txBytes(lab, 1), underlayBefore = txBytes(lab, 1, "eth0")
        for n in [2, 3] {
            let (st, out) = lab.inNS(lab.ctrNS(1), ["ping", "-c", "2", "-W", "2", "-q", "\(lab.ctrIP(n))"])
            #expect(st == 0, "ping ctr1 → ctr\(n): \(out)")
        }
        // 4 echo requests of 84 bytes (IP) through the device, and on the underlay each 50 bytes bigger (VXLAN over UDP)
        #expect(txBytes(lab, 1) >= before + 4 * 84, "the traffic went through hako.vx42")
        #expect(txBytes(lab, 1, "eth0") >= underlayBefore + 4 * (84 + 50), "and out of the underlay link encapsulated")
        try FileManager.default.createDirectory(atPath: "/tmp/hkov-www-\(getpid())", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: "/tmp/hkov-www-\(getpid())") }
        try "hello from ctr2\n".write(toFile: "/tmp/hkov-www-\(getpid())/index.html", atomically: true, encoding: .utf8)
        try lab.background(lab.ctrNS(2), ["busybox", "httpd", "-f", "-p", "\(lab.ctrIP(2)):80", "-h", "/tmp/hkov-www-\(getpid())"])
        var body = ""
        for _ in 0..<25 where !body.contains("hello") {
            body = lab.inNS(lab.ctrNS(1), ["curl", "-s", "--noproxy", "*", "--max-time", "2", "http://\(lab.ctrIP(2))/"]).1
            if !body.contains("hello") { usleep(100_000) }
        }
        #expect(body == "hello from ctr2\n", "TCP ctr1 → ctr2")

        // MTU: a DF ping of 1500 − 78 = 1422 bytes of payload fits, one more does not.
        #expect(lab.inNS(lab.ctrNS(1), ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1422", "\(lab.ctrIP(3))"]).0 == 0)
        #expect(lab.inNS(lab.ctrNS(1), ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1423", "\(lab.ctrIP(3))"]).0 != 0)
    }

    @Test func reconcileIsIdempotentAndRemovesExactlyADepartedPeer() throws {
        let lab = OverlayLab(tag: "r")
        try lab.up()
        try lab.reconcileAll()
        // A foreign route through hako's device, a foreign route and neighbour elsewhere.
        try lab.must(["ip", "-n", lab.nodeNS(1), "route", "add", "10.99.0.0/24", "dev", "hako.vx42"])
        try lab.must(["ip", "-n", lab.nodeNS(1), "route", "add", "10.98.0.0/24", "via", "172.31.252.9", "dev", "eth0"])
        try lab.must(["ip", "-n", lab.nodeNS(1), "neigh", "add", "172.31.252.9", "lladdr", "02:00:00:00:00:09", "dev", "eth0", "nud", "permanent"])
        let snapshot = { (n: Int) in
            ["bridge fdb show dev hako.vx42", "ip neigh show", "ip route show"].flatMap { self.lines(lab, n, $0.split(separator: " ").map(String.init)) }.sorted()
        }
        let first = snapshot(1)

        // Again, and again after an "agent restart" (a new facility object): no change at all.
        #expect(try lab.reconcileAll() == [0, 0, 0])
        #expect(try lab.overlay(1).reconcile(node: lab.node(1), peers: lab.nodes).changes == 0)
        #expect(snapshot(1) == first, "no flap, no duplicates")

        // node 3 leaves: exactly its three entries go, on every other node; within the bound.
        let start = ContinuousClock.now
        #expect(try lab.overlay(1).reconcile(node: lab.node(1), peers: [lab.node(1), lab.node(2)]).changes == 3)
        #expect(try lab.overlay(2).reconcile(node: lab.node(2), peers: [lab.node(1), lab.node(2)]).changes == 3)
        #expect(ContinuousClock.now - start < .seconds(1))
        let after = snapshot(1)
        #expect(Set(first).subtracting(after) == ["0e:48:ac:1f:fc:03 dst 172.31.252.3 self permanent",
                                                  "10.77.3.0 dev hako.vx42 lladdr 0e:48:ac:1f:fc:03 PERMANENT",
                                                  "10.77.3.0/24 via 10.77.3.0 dev hako.vx42 proto 104 onlink"])
        #expect(Set(after).isSubset(of: first))
        for foreign in ["10.99.0.0/24 dev hako.vx42 scope link", "10.98.0.0/24 via 172.31.252.9 dev eth0",
                        "172.31.252.9 dev eth0 lladdr 02:00:00:00:00:09 PERMANENT"] {
            #expect(after.contains(foreign), "foreign entry kept: \(foreign)")
        }
        #expect(lab.inNS(lab.ctrNS(1), ["ping", "-c", "1", "-W", "2", "\(lab.ctrIP(2))"]).0 == 0, "node 2 still reachable")
        #expect(lab.inNS(lab.ctrNS(1), ["ping", "-c", "1", "-W", "1", "\(lab.ctrIP(3))"]).0 != 0, "node 3 gone")

        // A route of someone else's in the way is an error, not overwritten.
        try lab.must(["ip", "-n", lab.nodeNS(1), "route", "add", "10.77.3.0/24", "via", "172.31.252.9", "dev", "eth0"])
        #expect(throws: HakoError.self) { try lab.overlay(1).reconcile(node: lab.node(1), peers: lab.nodes) }
        #expect(lines(lab, 1, ["ip", "route", "show", "10.77.3.0/24"]) == ["10.77.3.0/24 via 172.31.252.9 dev eth0"])

        // A device with the wrong parameters is replaced; removing it removes every entry.
        try lab.must(["ip", "-n", lab.nodeNS(2), "link", "set", "hako.vx42", "mtu", "1300"])
        let repaired = try lab.overlay(2).reconcile(node: lab.node(2), peers: [lab.node(1), lab.node(2)])
        // The kernel flushes a device's neighbours when its MTU changes: the repair puts the one back.
        #expect(repaired.changes == repaired.setNeighbours.count && repaired.setNeighbours.count <= 1, "\(repaired)")
        #expect(try lab.overlay(2).reconcile(node: lab.node(2), peers: [lab.node(1), lab.node(2)]).changes == 0)
        #expect(lab.inNS(lab.ctrNS(2), ["ping", "-c", "1", "-W", "2", "\(lab.ctrIP(1))"]).0 == 0)
        #expect(lab.inNS(lab.nodeNS(2), ["ip", "-o", "link", "show", "hako.vx42"]).1.contains("mtu 1450"))
        try lab.overlay(2).remove()
        try lab.overlay(2).remove()
        #expect(lines(lab, 2, ["ip", "route"]).allSatisfy { !$0.contains("proto 104") })
    }
}
