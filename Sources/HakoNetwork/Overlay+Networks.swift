import HakoSystem

/// Cluster networks on the overlay (Swarm's overlay networks): each has its
/// own VNI and CIDR, cut into one subnet per node. A node that holds a subnet
/// of a network has, for it, a bridge `hako.br<VNI>` on that subnet (made by
/// the engine, gateway .1) and a VXLAN device `hako.vx<VNI>` with the same
/// three entries per other node of the network as the cluster's own device
/// (`OverlayPlan`, with the network's subnets in place of the cluster's):
///
///     FDB        peer VTEP MAC → dst peer underlay address
///     neighbour  peer's subnet of the network .0 → peer VTEP MAC
///     route      peer's subnet of the network via its .0 dev hako.vx<VNI> onlink
///
/// This file is the pure part: which networks a node builds, with which peers,
/// which VXLAN devices of networks gone it deletes (`NodeNetworksPlan.make`),
/// and the pairs of links the overlay table keeps apart (`OverlaySegment`).

/// A cluster network as the peer map gives it.
public struct VXLANNetwork: Sendable, Hashable {
    public var id: String
    public var name: String
    public var vni: UInt32
    public var cidr: IPv4Network
    /// Node id → the node's subnet of the network.
    public var subnets: [String: IPv4Network]

    public init(id: String, name: String, vni: UInt32, cidr: IPv4Network, subnets: [String: IPv4Network]) {
        self.id = id; self.name = name; self.vni = vni; self.cidr = cidr; self.subnets = subnets
    }

    public var deviceName: String { VXLANNetwork.deviceName(vni: vni) }
    public var bridgeName: String { VXLANNetwork.bridgeName(vni: vni) }

    /// `hako.vx<VNI>`, as the cluster's device (`OverlayConfig.deviceName`).
    public static func deviceName(vni: UInt32) -> String { "hako.vx\(vni)" }
    /// `hako.br<VNI>` (at most 15 bytes: VNI < 2^24).
    public static func bridgeName(vni: UInt32) -> String { "hako.br\(vni)" }

    /// The VNI of a hako VXLAN device's name, nil for any other name.
    public static func vni(ofDevice name: String) -> UInt32? {
        guard name.hasPrefix("hako.vx") else { return nil }
        let digits = name.dropFirst("hako.vx".count)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt32(digits)
    }
}

/// A network's bridge and VXLAN device on one node: the overlay table keeps
/// each segment's traffic within it (and so the cluster network's).
public struct OverlaySegment: Sendable, Hashable {
    public var bridge: String
    public var device: String

    public init(bridge: String, device: String) { self.bridge = bridge; self.device = device }
}

/// What one node builds for the cluster networks of a peer map.
public struct NodeNetworksPlan: Sendable, Equatable {
    /// One network the node holds a subnet of: its overlay settings, the node
    /// with its subnet of the network, and the other nodes that hold one.
    public struct Member: Sendable, Equatable {
        public var network: VXLANNetwork
        public var config: OverlayConfig
        public var node: OverlayNode
        public var peers: [OverlayNode]
    }

    /// By VNI.
    public var members: [Member] = []
    /// hako's VXLAN devices of networks no longer built here (never the cluster's), by name.
    public var removeDevices: [String] = []

    /// Each member network's bridge and device, after the cluster network's.
    public func segments(cluster: OverlaySegment) -> [OverlaySegment] {
        [cluster] + members.map { OverlaySegment(bridge: $0.network.bridgeName, device: $0.network.deviceName) }
    }

    /// `node`: this node's id; `underlays`: every node of the map by id;
    /// `cluster`: the cluster network's settings (its VNI is never a network's,
    /// its CIDR overlaps none); `devices`: the node's link names now. The node
    /// builds each network it holds a subnet of, with every other node of the
    /// map that holds one as a peer. Bad maps are refused whole, before any change.
    public static func make(node: String, underlays: [String: IPv4Address], cluster: OverlayConfig, networks: [VXLANNetwork],
                            devices: [String]) throws -> NodeNetworksPlan {
        var plan = NodeNetworksPlan()
        var seenVNI: [UInt32: String] = [cluster.vni: "the cluster network"]
        var seenCIDR: [(IPv4Network, String)] = [(cluster.clusterCIDR, "the cluster network")]
        for n in networks.sorted(by: { $0.vni < $1.vni }) {
            guard n.vni > 0, n.vni < 1 << 24 else { throw HakoError(.invalidArgument("VNI"), "overlay: network \(n.name) has VNI \(n.vni), outside 1…16777215") }
            if let other = seenVNI[n.vni] { throw HakoError(.invalidArgument("VNI"), "overlay: networks \(other) and \(n.name) share VNI \(n.vni)") }
            seenVNI[n.vni] = n.name
            if let other = seenCIDR.first(where: { $0.0.overlaps(n.cidr) }) {
                throw HakoError(.invalidArgument("subnet"), "overlay: network \(n.name) (\(n.cidr)) overlaps \(other.1) (\(other.0))")
            }
            seenCIDR.append((n.cidr, n.name))
            guard let mine = n.subnets[node], let underlay = underlays[node] else { continue }
            let config = OverlayConfig(vni: n.vni, port: cluster.port, clusterCIDR: n.cidr)
            let me = OverlayNode(id: node, underlay: underlay, subnet: mine)
            var peers: [OverlayNode] = []
            for (id, subnet) in n.subnets.sorted(by: { $0.key < $1.key }) where id != node {
                guard let u = underlays[id] else { continue }
                peers.append(OverlayNode(id: id, underlay: u, subnet: subnet))
            }
            do {
                try OverlayPlan.validate(node: me, peers: peers, config: config)
            } catch let e as HakoError {
                throw HakoError(e.kind, "network \(n.name): \(e.message)")
            }
            plan.members.append(Member(network: n, config: config, node: me, peers: peers))
        }
        let kept = Set(plan.members.map(\.network.vni) + [cluster.vni])
        plan.removeDevices = devices.filter { d in VXLANNetwork.vni(ofDevice: d).map { !kept.contains($0) } ?? false }.sorted()
        return plan
    }
}
