import HakoNetwork

/// Cluster networks (Swarm's overlay networks): created with a VNI and a CIDR
/// of their own (`NetworkAllocator`), stored and replicated through the log
/// like every record, listed beside the built-in cluster network, and refused
/// removal while a service is on them.
extension CoordinatorCore {
    /// The admin's network requests; nil: not one of them.
    func handleNetworkAdmin(_ env: Envelope) throws -> [UInt8]? {
        switch env.type {
        case MessageType.networkCreate:
            let r = try env.body(NetworkCreateRequest.self)
            return reply(env, view(try createNetwork(r)))
        case MessageType.networkList:
            let items = state.networks.values.sorted { ($0.name, $0.id) < ($1.name, $1.id) }.map(view)
            return reply(env, NetworkList(items: [clusterNetworkView] + items))
        case MessageType.networkInspect:
            let ref = try env.body(NetworkRef.self).ref
            if ref == ServiceSpec.clusterNetwork { return reply(env, clusterNetworkView) }
            return reply(env, view(try state.findNetwork(ref)))
        case MessageType.networkRemove:
            let ref = try env.body(NetworkRef.self).ref
            if ref == ServiceSpec.clusterNetwork {
                throw ClusterError.conflict("network \(ref) is the built-in cluster network: it cannot be removed")
            }
            try removeNetwork(try state.findNetwork(ref))
            return reply(env, EmptyBody())
        default:
            return nil
        }
    }

    /// Allocates the network's VNI and CIDR and stores it.
    @discardableResult
    public func createNetwork(_ r: NetworkCreateRequest) throws -> NetworkRecord {
        try NetworkRecord.validate(name: r.name, labels: r.labels)
        if state.networks.values.contains(where: { $0.name == r.name }) {
            throw ClusterError.conflict("network \(r.name) already exists")
        }
        let taken = state.networks.values.compactMap { IPv4Network($0.subnet) }
        let subnet = try networkAllocator.subnet(requested: r.subnet, taken: taken)
        let vni = try networkAllocator.vni(taken: Set(state.networks.values.map(\.vni)))
        let wall = clock.wall()
        let n = NetworkRecord(id: Identifiers.make(), name: r.name, subnet: subnet.description,
                              nodePrefix: NetworkAllocator.nodePrefix(for: subnet.prefix), vni: vni,
                              attachable: r.attachable, labels: r.labels, created: wall)
        state.put(n)
        record(ClusterEvent(time: wall, kind: "network", action: "created", id: n.id, name: n.name, message: "\(n.subnet), VNI \(n.vni)"))
        log.info("network \(n.name) created: \(n.subnet), VNI \(n.vni)")
        return n
    }

    /// Refused while a service is on it (the services named).
    public func removeNetwork(_ n: NetworkRecord) throws {
        let users = services(onNetwork: n.id)
        guard users.isEmpty else {
            throw ClusterError.conflict("network \(n.name) is in use by service\(users.count == 1 ? "" : "s") \(users.joined(separator: ", ")): remove \(users.count == 1 ? "it" : "them") or take \(users.count == 1 ? "it" : "them") off the network first (service update --network-rm \(n.name))")
        }
        state.removeNetwork(n.id)
        let wall = clock.wall()
        record(ClusterEvent(time: wall, kind: "network", action: "removed", id: n.id, name: n.name, message: n.subnet))
        log.info("network \(n.name) removed")
    }

    /// The names of the services whose current spec, or whose tasks still
    /// live, are on the network.
    func services(onNetwork id: String) -> [String] {
        var names = Set<String>()
        for s in state.services.values where s.spec.networks.contains(where: { $0.id == id }) { names.insert(s.spec.name) }
        for t in state.tasks.values where t.isLive && t.spec.networks.contains(where: { $0.id == id }) { names.insert(t.serviceName) }
        return names.sorted()
    }

    /// The spec with each network attachment bound to the id of the network
    /// of that name (a name no network has is refused).
    func resolvingNetworks(_ spec: ServiceSpec) throws(ClusterError) -> ServiceSpec {
        var out = spec
        out.networks = []
        for var a in spec.networks {
            guard let n = state.networks.values.first(where: { $0.name == a.target }) else {
                throw .notFound("network not found: \(a.target) (hako cluster network create \(a.target))")
            }
            a.id = n.id
            out.networks.append(a)
        }
        return out
    }

    func view(_ n: NetworkRecord) -> NetworkView {
        NetworkView(id: n.id, name: n.name, driver: "overlay", scope: "swarm", subnet: n.subnet, nodePrefix: n.nodePrefix, vni: n.vni,
                    attachable: n.attachable, builtIn: false, labels: n.labels, created: n.created, services: services(onNetwork: n.id))
    }

    /// The built-in cluster network: `cluster_cidr`, `overlay_vni`, every service that names no network.
    var clusterNetworkView: NetworkView {
        let users = state.services.values.filter { $0.spec.isOnClusterNetwork }.map(\.spec.name).sorted()
        return NetworkView(id: ServiceSpec.clusterNetwork, name: ServiceSpec.clusterNetwork, driver: "overlay", scope: "swarm",
                           subnet: config.clusterCIDR, nodePrefix: config.nodeSubnetPrefix, vni: config.overlayVNI, attachable: false,
                           builtIn: true, labels: [:], created: 0, services: users)
    }
}

/// Node subnets on the cluster networks.
extension CoordinatorCore {
    /// Leases each node a subnet of every network one of its live tasks is
    /// on and it holds none of yet (the lowest free one). A full network is
    /// logged; the task's node reports it cannot start it. Whether any lease was made.
    func leaseNetworkSubnets(for nodes: Set<String>) -> Bool {
        var leased = false
        for node in nodes.sorted() where state.nodes[node] != nil {
            let wanted = Set(state.tasks(onNode: node).filter(\.isLive).flatMap { $0.spec.networks.map(\.id) })
            for id in wanted.sorted() {
                guard var n = state.networks[id], n.leases[node] == nil, let subnets = n.nodeSubnets else { continue }
                guard let subnet = subnets.allocate(leased: Set(n.leases.values)) else {
                    log.error("network \(n.name): no free /\(n.nodePrefix) of \(n.subnet) for node \(state.nodes[node]?.name ?? node)")
                    continue
                }
                n.leases[node] = subnet
                state.put(n)
                leased = true
                log.info("network \(n.name): node \(state.nodes[node]?.name ?? node) leased \(subnet)")
            }
        }
        return leased
    }

    /// A removed node's subnets go back to their networks.
    func releaseNetworkSubnets(of node: String) {
        for var n in state.networks.values.sorted(by: { $0.id < $1.id }) where n.leases[node] != nil {
            n.leases[node] = nil
            state.put(n)
        }
    }

    /// Each network some node leased a subnet of, with the subnets of the
    /// nodes that are peers and the names of the services on it.
    public func overlayNetworks(peers: [OverlayPeer]) -> [OverlayNetwork] {
        let live = Set(peers.map(\.nodeID))
        let names = networkNames()
        return state.networks.values.sorted { $0.vni < $1.vni }.compactMap { (n) -> OverlayNetwork? in
            let leases = n.leases.filter { live.contains($0.key) }
            guard !leases.isEmpty else { return nil }
            return OverlayNetwork(id: n.id, name: n.name, vni: n.vni, subnet: n.subnet, subnets: leases, names: names[n.id] ?? [:])
        }
    }

    /// Network id → its names: as the cluster network's (`serviceNames`),
    /// with the service's aliases on that network, each from the tasks'
    /// addresses on it; a stack's service also has its short name in the
    /// stack's domain ("kv.home" for home_kv), as on the cluster network: its
    /// stack's tasks search that domain, so "kv" asked as "kv.home" is
    /// answered on the network, not sent to the node's resolvers. A service's
    /// or replica's own name wins over an alias spelled the same.
    public func networkNames() -> [String: [String: [String]]] {
        var own: [String: [String: [String]]] = [:]
        var aliases: [String: [String: [String]]] = [:]
        for t in state.tasks.values where t.servesTraffic && !t.spec.networks.isEmpty {
            guard let node = t.nodeID, isPeer(node), let addresses = t.networkAddresses else { continue }
            for a in t.spec.networks {
                guard let ip = addresses[a.id] else { continue }
                own[a.id, default: [:]][t.serviceName, default: []].append(ip)
                own[a.id, default: [:]][t.name, default: []].append(ip)
                for alias in a.aliases { aliases[a.id, default: [:]][alias, default: []].append(ip) }
                if let short = t.spec.stackShortName, let ns = t.spec.stackNamespace {
                    aliases[a.id, default: [:]]["\(short).\(ns)", default: []].append(ip)
                }
            }
        }
        for (network, names) in aliases {
            for (name, ips) in names where own[network]?[name] == nil { own[network, default: [:]][name] = ips }
        }
        return own.mapValues { $0.mapValues { Array(Set($0)).sorted() } }
    }
}
