extension MessageType {
    /// Coordinator → agent: the overlay's peer map.
    public static let overlay = "overlay"
}

/// A node of the overlay: where its VXLAN tunnel ends and which /24 is behind it.
public struct OverlayPeer: Codable, Sendable, Hashable {
    public var nodeID: String
    public var name: String
    /// The node's underlay IPv4 address (the one its session comes from).
    public var underlay: String
    /// Its leased subnet ("10.88.1.0/24").
    public var subnet: String

    public init(nodeID: String, name: String, underlay: String, subnet: String) {
        self.nodeID = nodeID
        self.name = name
        self.underlay = underlay
        self.subnet = subnet
    }
}

/// A port of the routing mesh: answered on every node, forwarded round-robin
/// to the running tasks' addresses and target port.
public struct MeshPort: Codable, Sendable, Hashable {
    public var service: String
    public var proto: String
    public var published: Int
    public var target: Int
    public var endpoints: [String]

    public init(service: String, proto: String, published: Int, target: Int, endpoints: [String]) {
        self.service = service
        self.proto = proto
        self.published = published
        self.target = target
        self.endpoints = endpoints
    }
}

/// `overlay` (notification): every live node, the receiver included, and the
/// routing mesh's ports, sent to each node when either changes (a node joins,
/// comes back, dies or is removed; a task of a service with `ingress` ports
/// starts or ends) and at the start of each session.
public struct OverlayMessage: Codable, Sendable, Equatable {
    public var clusterCIDR: String
    public var vni: Int
    public var port: Int
    public var peers: [OverlayPeer]
    public var mesh: [MeshPort]
    /// Service names ("web", and "web.2" per replica) → the running tasks' addresses.
    public var names: [String: [String]]

    public init(clusterCIDR: String, vni: Int, port: Int, peers: [OverlayPeer], mesh: [MeshPort] = [], names: [String: [String]] = [:]) {
        self.names = names
        self.clusterCIDR = clusterCIDR
        self.vni = vni
        self.port = port
        self.peers = peers
        self.mesh = mesh
    }

    enum CodingKeys: String, CodingKey { case clusterCIDR, vni, port, peers, mesh, names }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(clusterCIDR: try c.decode(String.self, forKey: .clusterCIDR), vni: try c.decode(Int.self, forKey: .vni),
                  port: try c.decode(Int.self, forKey: .port), peers: try c.decode([OverlayPeer].self, forKey: .peers),
                  mesh: try c.decodeIfPresent([MeshPort].self, forKey: .mesh) ?? [],
                  names: try c.decodeIfPresent([String: [String]].self, forKey: .names) ?? [:])
    }

    /// The cluster's VXLAN network identifier and UDP port (IANA's).
    public static let defaultVNI = 4096
    public static let defaultPort = 4789
}
