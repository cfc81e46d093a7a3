// make bench only (tools/bench-overlay.sh): drives hako's overlay facility in
// network namespaces the script made, so the bench can compare it with the
// hand-built reference overlay (../shared/tools/overlay-sim.sh).
//
//   hako-overlay-bench reconcile NETNS SELF VNI CIDR NODE...
//       reconciles the node in NETNS (a /run/netns path) to the peer map
//       NODE = id,underlay,subnet; prints "changes N ms T"
//   hako-overlay-bench mesh NETNS SUBNET VNI CIDR PEERS PORT IP:PORT...
//       applies the node's overlay table (masquerade, routing mesh with one
//       service, VXLAN accepted from PEERS only: underlay addresses, comma-separated)
//   hako-overlay-bench converge ROUNDS VNI CIDR NETNS=NODE...
//       per round: the last node leaves, every other node reconciles, and the
//       time until every other node's kernel state has lost its entries (read
//       back) is taken; then it joins again, likewise. Prints the times.
#if canImport(Glibc)
import Glibc
#endif
import HakoNetwork
import HakoSystem

func fail(_ message: String) -> Never {
    writeStderr("hako-overlay-bench: \(message)\n")
    exit(125)
}

func parseNode(_ s: String) -> OverlayNode {
    let p = s.split(separator: ",").map(String.init)
    guard p.count == 3, let u = IPv4Address(p[1]), let n = IPv4Network(p[2]) else { fail("bad node \"\(s)\" (id,underlay,subnet)") }
    return OverlayNode(id: p[0], underlay: u, subnet: n)
}

func config(_ vni: String, _ cidr: String) -> OverlayConfig {
    guard let v = UInt32(vni), v < 1 << 24, let c = IPv4Network(cidr) else { fail("bad VNI \(vni) or cluster CIDR \(cidr)") }
    return OverlayConfig(vni: v, clusterCIDR: c)
}

func overlay(_ path: String, _ c: OverlayConfig) throws -> Overlay {
    Overlay(transport: try NetlinkSocket(namespace: try FileDescriptor.open(path, O_RDONLY)), config: c)
}

func milliseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}

/// Whether `o`'s kernel state is exactly what `peers` asks for.
func converged(_ o: Overlay, _ me: OverlayNode, _ peers: [OverlayNode]) throws -> Bool {
    guard let d = try o.device() else { return false }
    return OverlayPlan.make(peers: peers.filter { $0.id != me.id }, current: try o.state(device: d.link.index), device: d.link.index).changes == 0
}

let args = Array(CommandLine.arguments.dropFirst())
do {
    switch args.first {
    case "reconcile" where args.count >= 6:
        let c = config(args[3], args[4])
        let nodes = args[5...].map(parseNode)
        guard let me = nodes.first(where: { $0.id == args[2] }) else { fail("node \(args[2]) is not in the map") }
        let clock = ContinuousClock()
        var changes = 0
        let t = try clock.measure { changes = try overlay(args[1], c).reconcile(node: me, peers: nodes).changes }
        print("changes \(changes) ms \(milliseconds(t))")
    case "mesh" where args.count >= 8:
        let c = config(args[3], args[4])
        guard let subnet = IPv4Network(args[2]), let port = UInt16(args[6]) else { fail("bad subnet \(args[2]) or port \(args[6])") }
        let peers = args[5].split(separator: ",").map { p -> IPv4Address in
            guard let a = IPv4Address(String(p)) else { fail("bad peer address \(p)") }
            return a
        }
        let endpoints = args[7...].map { e -> MeshEndpoint in
            let p = e.split(separator: ":").map(String.init)
            guard p.count == 2, let ip = IPv4Address(p[0]), let port = UInt16(p[1]) else { fail("bad endpoint \(e)") }
            return MeshEndpoint(ip: ip, port: port)
        }
        let ns = try FileDescriptor.open(args[1], O_RDONLY)
        let mesh = RoutingMesh(transport: try NetlinkSocket.nftables(namespace: ns),
                               base: OverlayRules(subnet: subnet, clusterCIDR: c.clusterCIDR, device: c.deviceName,
                                                  vxlan: VXLANPeers(port: c.port, peers: peers)))
        try mesh.apply(services: [MeshService(name: "bench", publishedPort: port, endpoints: endpoints)])
    case "converge" where args.count >= 5:
        guard let rounds = Int(args[1]), rounds > 0, rounds <= 1000 else { fail("bad round count \(args[1])") }
        let c = config(args[2], args[3])
        let members: [(path: String, node: OverlayNode)] = args[4...].map { a in
            let p = a.split(separator: "=", maxSplits: 1).map(String.init)
            guard p.count == 2 else { fail("bad member \"\(a)\" (NETNS=id,underlay,subnet)") }
            return (p[0], parseNode(p[1]))
        }
        guard members.count >= 2 else { fail("at least two nodes") }
        let all = members.map(\.node)
        let stay = Array(members.dropLast())
        let overlays = try stay.map { try overlay($0.path, c) }
        let clock = ContinuousClock()
        var leave: [Double] = [], join: [Double] = []
        for _ in 0..<rounds {
            for (peers, into) in [(Array(all.dropLast()), 0), (all, 1)] {
                let start = clock.now
                for (i, m) in stay.enumerated() { try overlays[i].reconcile(node: m.node, peers: peers) }
                // read back until every remaining node's state is right (bounded)
                var ok = false
                for _ in 0..<1000 where !ok {
                    ok = try stay.enumerated().allSatisfy { try converged(overlays[$0.offset], $0.element.node, peers) }
                }
                guard ok else { fail("did not converge") }
                let ms = milliseconds(clock.now - start)
                if into == 0 { leave.append(ms) } else { join.append(ms) }
            }
        }
        func stats(_ v: [Double]) -> String {
            let s = v.sorted()
            return "median \(s[s.count / 2]) max \(s[s.count - 1])"
        }
        print("leave \(stats(leave))")
        print("join \(stats(join))")
    default:
        fail("usage: reconcile NETNS SELF VNI CIDR NODE... | mesh NETNS SUBNET VNI CIDR PORT IP:PORT... | converge ROUNDS VNI CIDR NETNS=NODE...")
    }
} catch {
    fail("\(error)")
}
