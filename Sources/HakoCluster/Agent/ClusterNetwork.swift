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
