import HakoEngine
import HakoNetwork
import HakoSystem
import Synchronization

/// What the agent needs to join its node to the overlay. The kernel
/// implementation drives HakoNetwork's `Overlay`; tests fake it.
public protocol NodeOverlay: Sendable {
    /// Brings the node's VXLAN device, FDB, neighbours and routes to the map
    /// (idempotent); a line saying what changed.
    func apply(_ map: OverlayMessage, node: String) throws -> String
    /// The node's containers now: each address of each → the networks that
    /// container is on (`ClusterDNS.clusterView` for the cluster network, else
    /// network ids), in its interfaces' order. Called on the agent's loop: cheap.
    func containers(_ members: [IPv4Address: [String]])
}

extension NodeOverlay {
    public func containers(_ members: [IPv4Address: [String]]) {}
}

/// The node's overlay through netlink, in the agent's network namespace: the
/// VXLAN device `hako.vx<VNI>` and one FDB entry, neighbour and route per
/// other node (Flannel's vxlan scheme, see docs/overlay.md); the node's
/// bridge takes the overlay's MTU once it exists. The same for each cluster
/// network the node holds a subnet of (`NodeNetworksPlan`): its own VXLAN
/// device `hako.vx<VNI>` with the entries toward the other nodes' subnets of
/// it; a network that left the map loses its device, its rules and (once
/// no container uses it) its engine network and bridge.
public struct KernelOverlay: NodeOverlay {
    let dns = ClusterDNS()
    /// The node's engine networks of the cluster networks (nil: devices only, as in tests).
    let networks: ClusterNetwork?

    public init(engine: Engine? = nil) { networks = engine.map { ClusterNetwork(engine: $0) } }

    public func containers(_ members: [IPv4Address: [String]]) { dns.update(members: members) }

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
        // The cluster networks this node holds a subnet of, and the devices of those gone.
        var networks: [VXLANNetwork] = []
        for n in map.networks {
            guard let v = UInt32(exactly: n.vni), let c = IPv4Network(n.subnet) else {
                throw ClusterError.invalid("overlay: network \(n.name) has an unusable VNI \(n.vni) or subnet \(n.subnet)")
            }
            var subnets: [String: IPv4Network] = [:]
            for (id, text) in n.subnets {
                guard let s = IPv4Network(text) else { throw ClusterError.invalid("overlay: network \(n.name): node \(id) has an unusable subnet \(text)") }
                subnets[id] = s
            }
            networks.append(VXLANNetwork(id: n.id, name: n.name, vni: v, cidr: c, subnets: subnets))
        }
        let links = RouteNetlink(try NetlinkSocket())
        let plan = try NodeNetworksPlan.make(node: node, underlays: Dictionary(nodes.map { ($0.id, $0.underlay) }, uniquingKeysWith: { a, _ in a }),
                                             cluster: overlay.config, networks: networks, devices: try links.linkNames())
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
        let segments = plan.segments(cluster: OverlaySegment(bridge: ClusterNetwork.bridge, device: overlay.config.deviceName))
        let mesh = RoutingMesh(transport: try NetlinkSocket.nftables(),
                               base: OverlayRules(subnet: me.subnet, clusterCIDR: cidr, device: overlay.config.deviceName,
                                                  vxlan: VXLANPeers(port: overlay.config.port, peers: others.map(\.underlay)),
                                                  segments: segments.count > 1 ? segments : []))
        try mesh.apply(services: services)
        let changes = try overlay.reconcile(node: me, peers: nodes)
        var networkChanges = 0
        for m in plan.members {
            networkChanges += try Overlay(transport: links.transport, config: m.config).reconcile(node: m.node, peers: m.peers).changes
        }
        for d in plan.removeDevices { try? links.delete(d) }
        let removed = self.networks?.removeUnused(keep: Set(plan.members.map(\.network.id))) ?? []
        // A node of the overlay routes: for its subnet, and for the mesh even with no container of its own.
        if Sysctl.read("net.ipv4.ip_forward") != "1" { try Sysctl.write("net.ipv4.ip_forward", "1") }
        // Containers' packets must fit in the tunnel: the bridge takes the overlay's MTU.
        if let bridge = try? links.link(ClusterNetwork.bridge), let mtu = try? overlay.mtu(node: me), bridge.mtu != mtu {
            try links.setMTU(ClusterNetwork.bridge, mtu)
        }
        // Service names, on each bridge's gateway — bound before the bridge exists, so
        // the first container on it finds its names from its first query — each query
        // answered from the names of the networks its sender is on.
        let gateways = [me.subnet.defaultGateway] + plan.members.map(\.node.subnet.defaultGateway)
        var names: [String: [String: [IPv4Address]]] = [ClusterDNS.clusterView: ClusterDNS.addresses(map.names)]
        var ranges = [DNSViews.Range(cidr, ClusterDNS.clusterView)]
        for n in map.networks {
            names[n.id] = ClusterDNS.addresses(n.names)
            if let c = IPv4Network(n.subnet) { ranges.append(DNSViews.Range(c, n.id)) }
        }
        try dns.serve(at: gateways, names: names, ranges: ranges)
        var line = "overlay \(overlay.config.deviceName): \(nodes.count - 1) peers, \(changes.changes) changes; mesh: \(services.count) ports; "
        line += "DNS: \(map.names.count) names on \(gateways.count) gateways"
        if !plan.members.isEmpty || !plan.removeDevices.isEmpty || !removed.isEmpty {
            line += "; networks: \(plan.members.map { "\($0.network.name) (\($0.network.deviceName), \($0.peers.count) peers)" }.joined(separator: ", "))"
            line += ", \(networkChanges) changes"
            if !plan.removeDevices.isEmpty || !removed.isEmpty { line += ", removed \((plan.removeDevices + removed).joined(separator: ", "))" }
        }
        return line
    }
}

/// The node's DNS responders for service names (HakoNetwork's `DNSResponder`)
/// on its bridges' gateways (the cluster network's and each cluster network's),
/// where the containers send their queries. Every responder answers a query
/// from the names of the networks its sender is on (`DNSViews`: the node's
/// containers by address, else the network whose CIDR holds the sender);
/// other names go to the node's own resolvers (none on loopback).
public final class ClusterDNS: Sendable {
    /// The view of the cluster network's names.
    public static let clusterView = ServiceSpec.clusterNetwork

    private struct State {
        var responders: [IPv4Address: DNSResponder] = [:]
        var names: [String: [String: [IPv4Address]]] = [:]
        var ranges: [DNSViews.Range] = []
        var members: [IPv4Address: [String]] = [:]
        var views: DNSViews { DNSViews(names: names, members: members, ranges: ranges, fallback: ClusterDNS.clusterView) }
    }
    private let state = Mutex(State())

    public init() {}

    static func addresses(_ names: [String: [String]]) -> [String: [IPv4Address]] { names.mapValues { $0.compactMap { IPv4Address($0) } } }

    /// Serves on exactly `gateways` (responders on others stop), from `names` per view.
    func serve(at gateways: [IPv4Address], names: [String: [String: [IPv4Address]]], ranges: [DNSViews.Range]) throws {
        try state.withLock { (s: inout State) throws -> Void in
            s.names = names
            s.ranges = ranges
            let views = s.views
            for (a, r) in s.responders where !gateways.contains(a) {
                r.stop()
                s.responders[a] = nil
            }
            for a in gateways {
                if let r = s.responders[a] { r.update(views: views); continue }
                let r = try DNSResponder.start(namespace: nil, address: a, upstreams: ClusterDNS.upstreams(), beforeTheAddress: true)
                r.update(views: views)
                s.responders[a] = r
            }
        }
    }

    /// The node's containers changed: every responder takes the new views.
    func update(members: [IPv4Address: [String]]) {
        state.withLock { s in
            guard s.members != members else { return }
            s.members = members
            let views = s.views
            for r in s.responders.values { r.update(views: views) }
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
