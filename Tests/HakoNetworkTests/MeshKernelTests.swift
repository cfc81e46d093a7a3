#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import Testing
@testable import HakoNetwork

/// The routing mesh, the overlay's masquerade and the DNS responder in a real
/// kernel, on the three-node lab.
@Suite(.enabled(if: getuid() == 0, "needs root"), .serialized) struct MeshKernelTests {
    /// A web root per container: index.html names the container, /cgi-bin/peer prints the client's address.
    func webRoot(_ name: String) throws -> String {
        let dir = "/tmp/hkov-www-\(name)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/cgi-bin", withIntermediateDirectories: true)
        try "\(name)\n".write(toFile: dir + "/index.html", atomically: true, encoding: .utf8)
        try "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n"
            .write(toFile: dir + "/cgi-bin/peer", atomically: true, encoding: .utf8)
        chmod(dir + "/cgi-bin/peer", 0o755)
        return dir
    }

    func get(_ lab: OverlayLab, _ ns: String, _ url: String) -> String {
        var out = ""
        for _ in 0..<20 {
            out = lab.inNS(ns, ["curl", "-s", "--noproxy", "*", "--max-time", "2", url]).1
            if !out.isEmpty { break }
            usleep(100_000)
        }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func mesh(_ lab: OverlayLab, _ n: Int) throws -> RoutingMesh {
        RoutingMesh(transport: try NetlinkSocket.nftables(namespace: try lab.open(lab.nodeNS(n))),
                    base: OverlayRules(subnet: lab.node(n).subnet, clusterCIDR: lab.config.clusterCIDR, device: lab.config.deviceName))
    }

    @Test func servicePortAnswersOnEveryNodeBalancedOverTasks() throws {
        let lab = OverlayLab(tag: "m")
        try lab.up()
        try lab.reconcileAll()
        var roots: [String] = []
        defer { for r in roots { try? FileManager.default.removeItem(atPath: r) } }
        for n in [1, 2] {
            let root = try webRoot("ctr\(n)")
            roots.append(root)
            try lab.background(lab.ctrNS(n), ["busybox", "httpd", "-f", "-p", "\(lab.ctrIP(n)):80", "-h", root])
        }
        // "The internet": a client on the underlay, outside the cluster CIDR.
        try lab.must(["ip", "-n", lab.underlayNS(), "addr", "add", "172.31.252.200/24", "dev", "br-ul"])
        let outside = try webRoot("outside")
        roots.append(outside)
        try lab.background(lab.underlayNS(), ["busybox", "httpd", "-f", "-p", "172.31.252.200:80", "-h", outside])

        let web = MeshService(name: "web", publishedPort: 8080, endpoints: [MeshEndpoint(ip: lab.ctrIP(1), port: 80), MeshEndpoint(ip: lab.ctrIP(2), port: 80)])
        for n in 1...3 { try mesh(lab, n).apply(services: [web]) }
        let listed = lab.inNS(lab.nodeNS(3), ["nft", "list", "table", "ip", "hako-overlay"]).1
        for line in ["fib daddr type local jump services", "ip daddr != 127.0.0.0/8 fib daddr type local jump services",
                     "tcp dport 8080 dnat ip to numgen inc mod 2 map { 0 : 10.77.1.2 . 80, 1 : 10.77.2.2 . 80 }",
                     "ip saddr 10.77.3.0/24 ip daddr != 10.77.0.0/16 masquerade", "oifname \"hako.vx42\" ct status dnat masquerade"] {
            #expect(listed.contains(line), "missing: \(line)\n\(listed)")
        }

        // Every node's address answers, from outside, from the node itself (no local task on node 3)
        // and from a container; the port reaches both tasks.
        for (ns, node) in [(lab.underlayNS(), 1), (lab.underlayNS(), 3), (lab.nodeNS(3), 3), (lab.ctrNS(3), 2)] {
            let seen = Set((0..<4).map { _ in get(lab, ns, "http://\(lab.underlayIP(node)):8080/") })
            #expect(seen == ["ctr1", "ctr2"], "\(ns) → node \(node): \(seen)")
        }
        // Masquerade only leaving the cluster CIDR: ctr1 → ctr2 keeps its source, ctr1 → outside does not.
        #expect(get(lab, lab.ctrNS(1), "http://\(lab.ctrIP(2))/cgi-bin/peer") == "\(lab.ctrIP(1))")
        #expect(get(lab, lab.ctrNS(1), "http://172.31.252.200/cgi-bin/peer") == "\(lab.underlayIP(1))")

        // Tasks move: one batch replaces the map; again with the same input changes nothing.
        var moved = web
        moved.endpoints = [MeshEndpoint(ip: lab.ctrIP(2), port: 80)]
        for _ in 0..<2 { for n in 1...3 { try mesh(lab, n).apply(services: [moved]) } }
        #expect(Set((0..<4).map { _ in get(lab, lab.underlayNS(), "http://\(lab.underlayIP(1)):8080/") }) == ["ctr2"])
        let after = lab.inNS(lab.nodeNS(1), ["nft", "list", "table", "ip", "hako-overlay"]).1
        #expect(after.components(separatedBy: "dnat ip to").count == 2, "\(after)")
        #expect(throws: HakoError.self) { try mesh(lab, 1).apply(services: [moved, moved]) }
        for n in 1...3 { try mesh(lab, n).remove() }
        #expect(!lab.inNS(lab.nodeNS(1), ["nft", "list", "tables"]).1.contains("hako"))
    }

    @Test func serviceNamesResolveAcrossNodesAndFollowTasks() throws {
        let lab = OverlayLab(tag: "d")
        try lab.up()
        try lab.reconcileAll()
        // node 2's underlay address plays the host's resolver for names that are not the cluster's
        let upstream = try DNSResponder.start(namespace: try lab.open(lab.nodeNS(2)), address: lab.underlayIP(2),
                                              records: ["outside.example": [IPv4Address("192.0.2.10")!]])
        defer { upstream.stop() }
        let dns = try DNSResponder.start(namespace: try lab.open(lab.nodeNS(1)), address: lab.gateway(1),
                                         upstreams: [DNSUpstream(ip: lab.underlayIP(2))],
                                         records: ["web": [lab.ctrIP(1), lab.ctrIP(2)], "web.1.abc": [lab.ctrIP(1)]])
        defer { dns.stop() }
        #expect(dns.port == 53)
        func lookup(_ ns: String, _ name: String) -> String {
            lab.inNS(ns, ["busybox", "nslookup", "-type=a", name, "\(lab.gateway(1))"], timeout: 10).1
        }
        let here = lookup(lab.ctrNS(1), "web")
        #expect(here.contains("10.77.1.2") && here.contains("10.77.2.2"), "\(here)")
        // from a container on another node, over the overlay
        let there = lookup(lab.ctrNS(3), "WEB.1.abc")
        #expect(there.contains("10.77.1.2") && !there.contains("10.77.2.2"), "\(there)")
        // a task moved
        dns.update(records: ["web": [lab.ctrIP(3)]])
        let moved = lookup(lab.ctrNS(3), "web")
        #expect(moved.contains("10.77.3.2") && !moved.contains("10.77.1.2"), "\(moved)")
        #expect(lookup(lab.ctrNS(1), "nothing.cluster").contains("NXDOMAIN"))
        // not the cluster's: forwarded to the upstream and relayed
        #expect(lookup(lab.ctrNS(1), "outside.example").contains("192.0.2.10"))
        // a responder bound to an address the namespace does not have: one clear error
        #expect(throws: SystemError.self) { try DNSResponder.start(namespace: try lab.open(lab.nodeNS(1)), address: IPv4Address("10.1.2.3")!) }
    }
}
