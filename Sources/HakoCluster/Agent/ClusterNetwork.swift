import HakoEngine
import HakoNetwork
import HakoSystem
import Synchronization

/// The node's container network: an engine bridge network on the subnet the
/// coordinator leased to the node (gateway .1, bridge `hakoc0`), so every
/// task's address is unique in the cluster. Made on the first task that
/// needs it; made again on the new subnet if the lease changed while no
/// container used it. Checked before every start (one small file read), so a
/// network removed meanwhile (`hako network prune`) is made again.
public final class ClusterNetwork: Sendable {
    public static let name = "hako-cluster"
    public static let bridge = "hakoc0"
    public static let label = "hako.cluster.network"

    let engine: Engine
    /// Starts on the worker threads check (and make) the network one at a time.
    private let making = Mutex(())

    public init(engine: Engine) { self.engine = engine }

    /// `overlay`: the cluster's CIDR (reached without masquerade, so a container's
    /// address is its source on every node) and the overlay's MTU (the bridge's
    /// and every container interface's); nil before the first peer map.
    public func ensure(subnet: String, overlay: ClusterNetworkOptions? = nil) throws {
        try making.withLock { _ throws -> Void in
            if let d = try? engine.findNetwork(ClusterNetwork.name) {
                if d.subnet?.description == subnet {
                    if let o = overlay, d.mtu != o.mtu || (d.masqueradeExcept ?? []) != [o.clusterCIDR] {
                        try engine.setNetworkOptions(ClusterNetwork.name, mtu: o.mtu, masqueradeExcept: [o.clusterCIDR])
                    }
                    return
                }
                let users = (try? engine.inspectNetwork(ClusterNetwork.name).Containers.count) ?? 0
                guard users == 0 else {
                    throw ClusterError.conflict("network \(ClusterNetwork.name) is on \(d.subnet?.description ?? "?") but the node's subnet is now \(subnet), and \(users) containers still use it")
                }
                try engine.removeNetwork(ClusterNetwork.name)
            }
            _ = try engine.createNetwork(name: ClusterNetwork.name, subnet: subnet, gateway: nil,
                                         labels: [ClusterNetwork.label: subnet], bridge: ClusterNetwork.bridge,
                                         mtu: overlay?.mtu, masqueradeExcept: overlay.map { [$0.clusterCIDR] } ?? [])
        }
    }
}

extension ClusterNetwork {
    /// Labels of a cluster network's engine network on the node.
    public static let idLabel = "hako.cluster.network.id"
    public static let nameLabel = "hako.cluster.network.name"

    /// A cluster network's engine network on the node (`hako-cluster-<VNI>`,
    /// bridge `hako.br<VNI>`, gateway .1 of the node's subnet of it): made as
    /// the cluster's is, when the first task on the network starts here; made
    /// again when it belongs to another network of the same VNI (the network
    /// was removed and made again) or the node's subnet of it changed, while
    /// no container uses it. Containers reach the network's whole CIDR through
    /// it, without masquerade.
    public func ensure(_ n: NodeNetwork, mtu: UInt32?) throws {
        try making.withLock { _ throws -> Void in
            if let d = try? engine.findNetwork(n.engineName) {
                if d.subnet == n.subnet, d.labels[ClusterNetwork.idLabel] == n.id, d.bridge == n.bridge {
                    if let m = mtu, d.mtu != m || (d.masqueradeExcept ?? []) != [n.cidr] {
                        try engine.setNetworkOptions(n.engineName, mtu: m, masqueradeExcept: [n.cidr])
                    }
                    return
                }
                let users = (try? engine.inspectNetwork(n.engineName).Containers.count) ?? 0
                guard users == 0 else {
                    throw ClusterError.conflict("network \(n.name): \(n.engineName) is on \(d.subnet?.description ?? "?") of network \(d.labels[ClusterNetwork.nameLabel] ?? "?"), but the node's subnet of it is now \(n.subnet), and \(users) containers still use it")
                }
                try engine.removeNetwork(n.engineName)
            }
            _ = try engine.createNetwork(name: n.engineName, subnet: n.subnet.description, gateway: nil,
                                         labels: [ClusterNetwork.idLabel: n.id, ClusterNetwork.nameLabel: n.name], bridge: n.bridge,
                                         mtu: mtu, masqueradeExcept: [n.cidr], routes: [n.cidr])
        }
    }

    /// Removes the engine networks of cluster networks not in `keep` (ids)
    /// that no container uses (their bridges go with them, and their rules
    /// with the engine's next firewall sync); the names of those removed.
    public func removeUnused(keep: Set<String>) -> [String] {
        making.withLock { _ -> [String] in
            var removed: [String] = []
            for d in (try? engine.networks()) ?? [] {
                guard let id = d.labels[ClusterNetwork.idLabel], !keep.contains(id) else { continue }
                if (try? engine.removeNetwork(d.name)) != nil { removed.append(d.name) }
            }
            return removed
        }
    }
}

/// A cluster network as this node builds it: from the peer map, with the node's subnet of it.
public struct NodeNetwork: Sendable, Equatable {
    public var id: String
    public var name: String
    public var vni: UInt32
    /// The network's CIDR.
    public var cidr: IPv4Network
    /// This node's subnet of it.
    public var subnet: IPv4Network

    public init(id: String, name: String, vni: UInt32, cidr: IPv4Network, subnet: IPv4Network) {
        self.id = id; self.name = name; self.vni = vni; self.cidr = cidr; self.subnet = subnet
    }

    /// The engine network on the node.
    public var engineName: String { NodeNetwork.engineName(vni: vni) }
    public var bridge: String { VXLANNetwork.bridgeName(vni: vni) }
    public static func engineName(vni: UInt32) -> String { "hako-cluster-\(vni)" }

    /// The map's networks this node holds a subnet of, by id.
    public static func from(_ map: OverlayMessage?, node: String) -> [String: NodeNetwork] {
        var out: [String: NodeNetwork] = [:]
        for n in map?.networks ?? [] {
            guard let vni = UInt32(exactly: n.vni), let cidr = IPv4Network(n.subnet), let s = n.subnets[node].flatMap({ IPv4Network($0) }) else { continue }
            out[n.id] = NodeNetwork(id: n.id, name: n.name, vni: vni, cidr: cidr, subnet: s)
        }
        return out
    }
}

/// What the overlay asks of the node's container network.
public struct ClusterNetworkOptions: Sendable, Equatable {
    public var clusterCIDR: IPv4Network
    /// Underlay MTU − 50 (nil: the engine's default).
    public var mtu: UInt32?

    public init(clusterCIDR: IPv4Network, mtu: UInt32?) { self.clusterCIDR = clusterCIDR; self.mtu = mtu }

    /// From a peer map: the cluster CIDR, and the MTU of the link that holds
    /// this node's underlay address; nil when the map does not hold the node yet.
    public static func from(_ map: OverlayMessage, node: String) -> ClusterNetworkOptions? {
        guard let me = map.peers.first(where: { $0.nodeID == node }) else { return nil }
        return from(clusterCIDR: map.clusterCIDR, underlay: me.underlay)
    }

    /// From what the node knows before any peer map (its session's answer
    /// and its own underlay address): the same options, so a task started
    /// first does not get MTU 1500 and masquerade toward the other nodes.
    /// nil for a loopback underlay (no overlay beside the coordinator).
    public static func from(clusterCIDR: String, underlay: String) -> ClusterNetworkOptions? {
        guard let cidr = IPv4Network(clusterCIDR), let ip = IPv4Address(underlay), !underlay.hasPrefix("127.") else { return nil }
        // The MTU is the underlay link's less the encapsulation: the VNI and port do not change it.
        let mtu = try? Overlay(transport: try NetlinkSocket(),
                               config: OverlayConfig(vni: UInt32(OverlayMessage.defaultVNI), port: UInt16(OverlayMessage.defaultPort), clusterCIDR: cidr))
            .mtu(node: OverlayNode(id: "", underlay: ip, subnet: cidr))
        return ClusterNetworkOptions(clusterCIDR: cidr, mtu: mtu)
    }
}
