#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing
@testable import HakoNetwork

/// The routing mesh, the overlay's masquerade and the DNS responder in a real
/// kernel, on the three-node lab.
@Suite(.needsRoot, .serialized) struct MeshKernelTests {
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
                    base: OverlayRules(subnet: lab.node(n).subnet, clusterCIDR: lab.config.clusterCIDR, device: lab.config.deviceName,
                                       vxlan: VXLANPeers(port: lab.config.port, peers: lab.nodes.filter { $0.id != lab.node(n).id }.map(\.underlay))))
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

    /// Sends UDP datagrams that are VXLAN frames, crafted by hand: VNI, then an
    /// Ethernet frame to a VTEP's MAC carrying IPv4/UDP from `src` to `dst`:9999.
    static let craftVXLAN = """
        import socket, struct, sys
        node, vni, vtep, src, dst, text = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6].encode()
        udp = struct.pack('!HHHH', 40000, 9999, 8 + len(text), 0) + text
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
        words = struct.unpack('!10H', ip); c = sum(words); c = (c >> 16) + (c & 0xffff); c += c >> 16
        ip = ip[:10] + struct.pack('!H', ~c & 0xffff) + ip[12:]
        frame = bytes.fromhex(vtep.replace(':', '')) + bytes.fromhex('02aabbccdd01') + b'\\x08\\x00' + ip + udp
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(3): s.sendto(struct.pack('!II', 0x08000000, vni << 8) + frame, (node, 4789))
        """
    /// Appends every datagram to UDP port 9999 to a file, for at most 20 s.
    static let receive = """
        import socket, sys, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 9999)); s.settimeout(0.5)
        end = time.time() + 20
        while time.time() < end:
            try: data = s.recv(2048)
            except socket.timeout: continue
            with open(sys.argv[1], 'ab') as f: f.write(data + b'\\n')
        """

    /// The overlay is closed to strangers: a machine on the underlay that is no
    /// node sends well-formed VXLAN frames to a node (spoofing another node's
    /// container as the inner source) and none reaches the container; the same
    /// frames from a peer do (the test can fail), and a node dropped from the
    /// peer map is refused from the next batch on.
    @Test func vxlanFromAStrangerReachesNoContainer() throws {
        let lab = OverlayLab(tag: "x")
        try lab.up()
        try lab.reconcileAll()
        for n in 1...3 { try mesh(lab, n).apply(services: []) }
        let stranger = try lab.stranger(IPv4Address("172.31.252.99")!)
        let got = "/tmp/hkov-vxlan-\(getpid())"
        defer { unlink(got) }
        try lab.background(lab.ctrNS(1), ["python3", "-c", Self.receive, got])
        let vtep = lab.node(1).vtepMAC.description
        func send(from ns: String, _ text: String) {
            let r = lab.inNS(ns, ["python3", "-c", Self.craftVXLAN, "\(lab.underlayIP(1))", "\(lab.config.vni)", vtep,
                                  "\(lab.ctrIP(2))", "\(lab.ctrIP(1))", text])
            #expect(r.0 == 0, "\(r.1)")
        }
        func received() -> String { (try? String(contentsOfFile: got, encoding: .utf8)) ?? "" }
        func arrives(_ text: String) -> Bool {
            for _ in 0..<40 { if received().contains(text) { return true }; usleep(50_000) }
            return false
        }
        // Ordinary overlay traffic still flows, and a peer's crafted frame arrives: the frame is good.
        #expect(lab.inNS(lab.ctrNS(2), ["ping", "-c", "1", "-W", "2", "\(lab.ctrIP(1))"]).0 == 0)
        for _ in 0..<20 where !arrives("from-peer") { send(from: lab.nodeNS(2), "from-peer") }
        #expect(received().contains("from-peer"), "a peer's VXLAN frame never reached the container: the check cannot fail")

        send(from: stranger, "from-stranger")
        usleep(500_000)
        #expect(!received().contains("from-stranger"), "a stranger's VXLAN frame reached the container")
        let listed = lab.inNS(lab.nodeNS(1), ["nft", "list", "chain", "ip", "hako-overlay", "input"]).1
        #expect(listed.contains("udp dport 4789 ip saddr != { 172.31.252.2, 172.31.252.3 } counter packets"), "\(listed)")
        #expect(!listed.contains("counter packets 0 "), "the stranger's frames were counted: \(listed)")

        // Node 2 leaves the peer map: its frames are refused from the next batch on.
        try RoutingMesh(transport: try NetlinkSocket.nftables(namespace: try lab.open(lab.nodeNS(1))),
                        base: OverlayRules(subnet: lab.node(1).subnet, clusterCIDR: lab.config.clusterCIDR, device: lab.config.deviceName,
                                           vxlan: VXLANPeers(port: lab.config.port, peers: [lab.underlayIP(3)]))).apply(services: [])
        send(from: lab.nodeNS(2), "from-departed")
        usleep(500_000)
        #expect(!received().contains("from-departed"))
    }

    /// A cluster network beside the lab's: its own VXLAN device per node with
    /// the entries toward the other node's subnet of it (the per-network plan),
    /// and the forward chain that keeps its segment apart from the cluster's,
    /// as the kernel reads them back.
    @Test func aNetworkHasItsOwnDeviceAndIsKeptApart() throws {
        let lab = OverlayLab(tag: "s")
        try lab.up()
        try lab.reconcileAll()
        let net = VXLANNetwork(id: "f0", name: "front", vni: 4097, cidr: IPv4Network("10.96.0.0/20")!,
                               subnets: [lab.node(1).id: IPv4Network("10.96.0.0/26")!, lab.node(2).id: IPv4Network("10.96.0.64/26")!])
        let underlays = Dictionary(uniqueKeysWithValues: lab.nodes.map { ($0.id, $0.underlay) })
        for n in [1, 2] {
            let plan = try NodeNetworksPlan.make(node: lab.node(n).id, underlays: underlays, cluster: lab.config, networks: [net],
                                                 devices: try RouteNetlink(try lab.netlink(lab.nodeNS(n))).linkNames())
            let m = try #require(plan.members.first)
            #expect(try Overlay(transport: try lab.netlink(lab.nodeNS(n)), config: m.config).reconcile(node: m.node, peers: m.peers).changes == 3)
            #expect(try Overlay(transport: try lab.netlink(lab.nodeNS(n)), config: m.config).reconcile(node: m.node, peers: m.peers).changes == 0)
            let segments = plan.segments(cluster: OverlaySegment(bridge: "hkbr0", device: lab.config.deviceName))
            try RoutingMesh(transport: try NetlinkSocket.nftables(namespace: try lab.open(lab.nodeNS(n))),
                            base: OverlayRules(subnet: lab.node(n).subnet, clusterCIDR: lab.config.clusterCIDR, device: lab.config.deviceName,
                                               vxlan: VXLANPeers(port: lab.config.port, peers: []), segments: segments)).apply(services: [])
        }
        let route = lab.inNS(lab.nodeNS(1), ["ip", "-4", "route", "show", "dev", "hako.vx4097"]).1
        #expect(route.contains("10.96.0.64/26 via 10.96.0.64 proto 104 onlink"), "\(route)")
        let fdb = lab.inNS(lab.nodeNS(1), ["bridge", "fdb", "show", "dev", "hako.vx4097"]).1
        #expect(fdb.contains("dst \(lab.underlayIP(2)) self permanent"), "\(fdb)")
        let vx = lab.inNS(lab.nodeNS(1), ["ip", "-d", "link", "show", "hako.vx4097"]).1
        #expect(vx.contains("vxlan id 4097") && vx.contains("dstport 4789"), "\(vx)")
        let forward = lab.inNS(lab.nodeNS(1), ["nft", "list", "chain", "ip", "hako-overlay", "forward"]).1
        for line in ["ct status dnat accept", "iifname \"hkbr0\" oifname \"hako.br4097\" counter packets 0 bytes 0 drop",
                     "iifname \"hako.vx4097\" oifname \"hako.vx42\" counter packets 0 bytes 0 drop"] {
            #expect(forward.contains(line), "missing: \(line)\n\(forward)")
        }
        // The network leaves the map: its device is the one the plan deletes.
        let gone = try NodeNetworksPlan.make(node: lab.node(1).id, underlays: underlays, cluster: lab.config, networks: [],
                                             devices: try RouteNetlink(try lab.netlink(lab.nodeNS(1))).linkNames())
        #expect(gone.removeDevices == ["hako.vx4097"])
        try RouteNetlink(try lab.netlink(lab.nodeNS(1))).delete("hako.vx4097")
        #expect(lab.inNS(lab.nodeNS(1), ["ip", "-4", "route", "show", "proto", "104"]).1.contains("10.96.") == false)
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
        // … unless asked to serve before the address exists (a bridge made later): answered once it does;
        // views per sender: ctr1 sees its network's names, ctr3 another's.
        let early = try DNSResponder.start(namespace: try lab.open(lab.nodeNS(1)), address: IPv4Address("10.77.1.53")!, beforeTheAddress: true)
        defer { early.stop() }
        early.update(views: DNSViews(names: ["a": ["db": [lab.ctrIP(2)]], "b": ["cache": [lab.ctrIP(3)]]],
                                     members: [lab.ctrIP(1): ["a"], lab.ctrIP(3): ["b"]]))
        try lab.must(["ip", "-n", lab.nodeNS(1), "addr", "add", "10.77.1.53/32", "dev", "hkbr0"])
        func ask(_ ns: String, _ name: String) -> String { lab.inNS(ns, ["busybox", "nslookup", "-type=a", name, "10.77.1.53"], timeout: 10).1 }
        #expect(ask(lab.ctrNS(1), "db").contains("10.77.2.2"), "ctr1 → db")
        #expect(ask(lab.ctrNS(1), "cache").contains("NXDOMAIN"), "ctr1 does not see b's names")
        #expect(ask(lab.ctrNS(3), "cache").contains("10.77.3.2"), "ctr3 → cache, over the overlay")
        #expect(ask(lab.ctrNS(3), "db").contains("NXDOMAIN"), "ctr3 does not see a's names")
    }
}
