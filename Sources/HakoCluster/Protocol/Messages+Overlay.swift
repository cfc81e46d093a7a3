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

/// A cluster network in the peer map: its own VXLAN device and, per node of
/// the map that has one, the node's subnet of it.
public struct OverlayNetwork: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var vni: Int
    /// The network's CIDR.
    public var subnet: String
    /// Node id → its subnet of the network.
    public var subnets: [String: String]
    /// The names on this network alone: each service on it ("web"), each of
    /// its replicas ("web.2") and each of its aliases on the network → the
    /// running tasks' addresses on the network.
    public var names: [String: [String]]

    public init(id: String, name: String, vni: Int, subnet: String, subnets: [String: String], names: [String: [String]] = [:]) {
        self.names = names
        self.id = id
        self.name = name
        self.vni = vni
        self.subnet = subnet
        self.subnets = subnets
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
    /// The cluster networks some node in the map has a subnet of (`network create`).
    public var networks: [OverlayNetwork]

    public init(clusterCIDR: String, vni: Int, port: Int, peers: [OverlayPeer], mesh: [MeshPort] = [], names: [String: [String]] = [:],
                networks: [OverlayNetwork] = []) {
        self.names = names
        self.networks = networks
        self.clusterCIDR = clusterCIDR
        self.vni = vni
        self.port = port
        self.peers = peers
        self.mesh = mesh
    }

    enum CodingKeys: String, CodingKey { case clusterCIDR, vni, port, peers, mesh, names, networks }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(clusterCIDR: try c.decode(String.self, forKey: .clusterCIDR), vni: try c.decode(Int.self, forKey: .vni),
                  port: try c.decode(Int.self, forKey: .port), peers: try c.decode([OverlayPeer].self, forKey: .peers),
                  mesh: try c.decodeIfPresent([MeshPort].self, forKey: .mesh) ?? [],
                  names: try c.decodeIfPresent([String: [String]].self, forKey: .names) ?? [:],
                  networks: try c.decodeIfPresent([OverlayNetwork].self, forKey: .networks) ?? [])
    }

    /// The cluster's VXLAN network identifier and UDP port (IANA's).
    public static let defaultVNI = 4096
    public static let defaultPort = 4789
}
