/// The overlay's peer map: which nodes the VXLAN mesh joins. Kept in memory,
/// computed from the nodes' status, subnet and session address.
extension CoordinatorCore {
    /// Every ready or suspect node (a short blip keeps its tunnel) with its
    /// underlay address and subnet, by id.
    public func peerMap() -> [OverlayPeer] {
        var out: [OverlayPeer] = []
        for n in state.nodes.values {
            let st = dispatcher.status(n.id)
            guard st == .ready || st == .suspect, let host = CoordinatorCore.host(of: n.address),
                  let subnet = state.subnet(of: n.id) ?? (n.subnet.isEmpty ? nil : n.subnet) else { continue }
            out.append(OverlayPeer(nodeID: n.id, name: n.name, underlay: host, subnet: subnet))
        }
        return out.sorted { $0.nodeID < $1.nodeID }
    }

    /// "10.0.0.5:41234" → "10.0.0.5"; nil for anything but IPv4.
    static func host(of address: String) -> String? {
        guard let e = try? Endpoint(parsing: address), e.host.split(separator: ".").count == 4,
              e.host.split(separator: ".").allSatisfy({ UInt8($0) != nil }) else { return nil }
        return e.host
    }

    /// Sends the map to every node in session that does not hold the current one.
    func sendPeerMaps() {
        let map = peerMap()
        if map != overlayMap {
            overlayMap = map
            overlaySent = [:]
            log.info("overlay: \(map.count) nodes (\(map.map(\.name).joined(separator: ", ")))")
        }
        let msg = OverlayMessage(clusterCIDR: config.clusterCIDR, vni: OverlayMessage.defaultVNI, port: OverlayMessage.defaultPort, peers: map)
        var line: [UInt8]?
        for p in map {
            guard let conn = dispatcher.nodes[p.nodeID]?.connection, overlaySent[p.nodeID] != conn else { continue }
            if line == nil { line = WireEncoder.request(MessageType.overlay, id: nil, msg) }
            if let l = line { send(conn, l) }
            overlaySent[p.nodeID] = conn
        }
    }
}
