import HakoNetwork
import HakoSystem

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
        let plan = try overlay.reconcile(node: me, peers: nodes)
        // Containers' packets must fit in the tunnel: the bridge takes the overlay's MTU.
        let links = RouteNetlink(try NetlinkSocket())
        if let bridge = try? links.link(ClusterNetwork.bridge), let mtu = try? overlay.mtu(node: me), bridge.mtu != mtu {
            try links.setMTU(ClusterNetwork.bridge, mtu)
        }
        return "overlay \(overlay.config.deviceName): \(nodes.count - 1) peers, \(plan.changes) changes"
    }
}
