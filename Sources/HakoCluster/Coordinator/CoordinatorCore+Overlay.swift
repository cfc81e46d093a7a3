/// The overlay's peer map, the mesh and the service names: computed from the
/// stored nodes (subnet, underlay address) and tasks (state, address) and the
/// nodes' liveness.
extension CoordinatorCore {
    /// Whether a node's tunnels, mesh endpoints and names stay: ready or
    /// suspect (a short blip keeps them), or not heard from yet since this
    /// coordinator started (its stored state stands until its grace runs out:
    /// a restarted coordinator answers at once with what it knew).
    func isPeer(_ node: String) -> Bool { dispatcher.status(node) != .down }

    /// Every node not down with its underlay address and subnet, by id.
    public func peerMap() -> [OverlayPeer] {
        var out: [OverlayPeer] = []
        for n in state.nodes.values {
            guard isPeer(n.id), let host = n.underlayHost,
                  let subnet = state.subnet(of: n.id) ?? (n.subnet.isEmpty ? nil : n.subnet) else { continue }
            out.append(OverlayPeer(nodeID: n.id, name: n.name, underlay: host, subnet: subnet))
        }
        return out.sorted { $0.nodeID < $1.nodeID }
    }

    /// The routing mesh: each `ingress` port of each service with the
    /// addresses of its running tasks that are healthy or have no check (on
    /// nodes not down), in a stable order.
    public func meshPorts() -> [MeshPort] {
        var out: [MeshPort] = []
        for s in state.services.values where !s.spec.ingress.isEmpty {
            let endpoints = state.tasks.values.filter { t in
                t.serviceID == s.id && t.servesTraffic && t.address != nil
                    && t.nodeID.map(isPeer) == true
            }.compactMap(\.address).sorted()
            for b in s.spec.ingressBindings {
                out.append(MeshPort(service: s.spec.name, proto: b.proto.rawValue, published: Int(b.hostPort), target: Int(b.containerPort),
                                    endpoints: endpoints))
            }
        }
        return out.sorted { ($0.published, $0.proto) < ($1.published, $1.proto) }
    }

    /// Service names on the cluster network (services on other networks are
    /// not there: `networkNames`): "web" → every running task's
    /// address (healthy ones, for a service with a check), "web.2" → replica 2's.
    /// A stack's service is also its short name in the stack's domain
    /// ("web.home" for home_web), which its stack's tasks search: within a
    /// stack, "web" finds it, and two stacks' "web" never meet. A service's
    /// or replica's own name wins over a stack name spelled the same.
    public func serviceNames() -> [String: [String]] {
        var out: [String: [String]] = [:]
        var stackNames: [String: [String]] = [:]
        for t in state.tasks.values where t.servesTraffic && t.spec.isOnClusterNetwork {
            guard let a = t.address, let node = t.nodeID, isPeer(node) else { continue }
            out[t.serviceName, default: []].append(a)
            out[t.name, default: []].append(a)
            if let short = t.spec.stackShortName, let ns = t.spec.stackNamespace { stackNames["\(short).\(ns)", default: []].append(a) }
        }
        for (name, addresses) in stackNames where out[name] == nil { out[name] = addresses }
        return out.mapValues { $0.sorted() }
    }

    /// Sends the map to every node in session that does not hold the current one.
    func sendPeerMaps() {
        let map = peerMap()
        let mesh = meshPorts()
        let names = serviceNames()
        let networks = overlayNetworks(peers: map)
        if map != overlayMap || mesh != overlayMesh || names != overlayNames || networks != overlayNetworkMap {
            if map != overlayMap { log.info("overlay: \(map.count) nodes (\(map.map(\.name).joined(separator: ", ")))") }
            overlayMap = map
            overlayMesh = mesh
            overlayNames = names
            overlayNetworkMap = networks
            overlaySent = [:]
        }
        let msg = OverlayMessage(clusterCIDR: config.clusterCIDR, vni: config.overlayVNI, port: config.overlayPort, peers: map,
                                 mesh: mesh, names: names, networks: networks)
        var line: [UInt8]?
        for p in map {
            guard let conn = dispatcher.nodes[p.nodeID]?.connection, overlaySent[p.nodeID] != conn else { continue }
            if line == nil { line = WireEncoder.request(MessageType.overlay, id: nil, msg) }
            if let l = line { send(conn, l) }
            overlaySent[p.nodeID] = conn
        }
    }
}
