import HakoNetwork
import HakoSystem
import Synchronization

/// What the agent needs to join its node to the overlay. The kernel
/// implementation drives HakoNetwork's `Overlay`; tests fake it.
public protocol NodeOverlay: Sendable {
    /// Brings the node's VXLAN device, FDB, neighbours and routes to the map
    /// (idempotent); a line saying what changed.
    func apply(_ map: OverlayMessage, node: String) throws -> String
}

/// The node's overlay through netlink, in the agent's network namespace: the
/// VXLAN device `hako.vx<VNI>` and one FDB entry, neighbour and route per
/// other node (Flannel's vxlan scheme, see docs/overlay.md); the node's
/// bridge takes the overlay's MTU once it exists.
public struct KernelOverlay: NodeOverlay {
    let dns = ClusterDNS()

    public init() {}

    public func apply(_ map: OverlayMessage, node: String) throws -> String {
        guard let cidr = IPv4Network(map.clusterCIDR), let vni = UInt32(exactly: map.vni), let port = UInt16(exactly: map.port) else {
            throw ClusterError.invalid("overlay: bad cluster CIDR, VNI or port in the peer map")
        }
        var nodes: [OverlayNode] = []
        for p in map.peers {
            guard let ip = IPv4Address(p.underlay), let subnet = IPv4Network(p.subnet) else {
                throw ClusterError.invalid("overlay: node \(p.name) has an unusable address \(p.underlay) or subnet \(p.subnet)")
            }
            nodes.append(OverlayNode(id: p.nodeID, underlay: ip, subnet: subnet))
        }
        guard let me = nodes.first(where: { $0.id == node }) else { return "overlay: this node is not in the map yet" }
        let overlay = Overlay(transport: try NetlinkSocket(), config: OverlayConfig(vni: vni, port: port, clusterCIDR: cidr))
        let others = nodes.filter { $0.id != me.id }
        try OverlayPlan.validate(node: me, peers: others, config: overlay.config)
        // The routing mesh, the overlay's masquerade and the VXLAN filter: one
        // nftables batch (table hako-overlay), applied before the VXLAN device
        // exists or learns of a new peer, so its socket is never open to strangers.
        var services: [MeshService] = []
        for p in map.mesh {
            guard let proto = PortForward.Proto(rawValue: p.proto), let published = UInt16(exactly: p.published), let target = UInt16(exactly: p.target) else {
                throw ClusterError.invalid("overlay: bad mesh port \(p.published)/\(p.proto) of \(p.service)")
            }
            services.append(MeshService(name: p.service, proto: proto, publishedPort: published,
                                        endpoints: p.endpoints.compactMap { IPv4Address($0) }.map { MeshEndpoint(ip: $0, port: target) }))
        }
        let mesh = RoutingMesh(transport: try NetlinkSocket.nftables(),
                               base: OverlayRules(subnet: me.subnet, clusterCIDR: cidr, device: overlay.config.deviceName,
                                                  vxlan: VXLANPeers(port: overlay.config.port, peers: others.map(\.underlay))))
        try mesh.apply(services: services)
        let plan = try overlay.reconcile(node: me, peers: nodes)
        // A node of the overlay routes: for its subnet, and for the mesh even with no container of its own.
        if Sysctl.read("net.ipv4.ip_forward") != "1" { try Sysctl.write("net.ipv4.ip_forward", "1") }
        // Containers' packets must fit in the tunnel: the bridge takes the overlay's MTU.
        let links = RouteNetlink(try NetlinkSocket())
        if let bridge = try? links.link(ClusterNetwork.bridge), let mtu = try? overlay.mtu(node: me), bridge.mtu != mtu {
            try links.setMTU(ClusterNetwork.bridge, mtu)
        }
        // Service names, on the bridge's gateway once the bridge exists.
        var served = "no bridge yet"
        if (try? links.link(ClusterNetwork.bridge)) != nil {
            try dns.serve(at: me.subnet.defaultGateway, names: map.names)
            served = "\(map.names.count) names"
        }
        return "overlay \(overlay.config.deviceName): \(nodes.count - 1) peers, \(plan.changes) changes; mesh: \(services.count) ports; DNS: \(served)"
    }
}

/// The node's DNS responder for service names (HakoNetwork's `DNSResponder`)
/// on its bridge's gateway, where the cluster's containers send their
/// queries; other names go to the node's own resolvers (none on loopback).
public final class ClusterDNS: Sendable {
    private let responder = Mutex<DNSResponder?>(nil)

    public init() {}

    func serve(at gateway: IPv4Address, names: [String: [String]]) throws {
        let records = names.mapValues { $0.compactMap { IPv4Address($0) } }
        try responder.withLock { (r: inout DNSResponder?) throws -> Void in
            if let current = r, current.address == gateway {
                current.update(records: records)
                return
            }
            r?.stop()
            r = try DNSResponder.start(namespace: nil, address: gateway, upstreams: ClusterDNS.upstreams(), records: records)
        }
    }

    /// The nameservers of /etc/resolv.conf that are not loopback.
    static func upstreams() -> [DNSUpstream] {
        guard let text = try? FS.readString("/etc/resolv.conf") else { return [] }
        return text.split(separator: "\n").compactMap { line -> DNSUpstream? in
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 2, f[0] == "nameserver", let ip = IPv4Address(String(f[1])), !String(f[1]).hasPrefix("127.") else { return nil }
            return DNSUpstream(ip: ip)
        }
    }
}
