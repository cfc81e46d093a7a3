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

/// `overlay` (notification): every live node, the receiver included, sent to
/// each node when the map changes (a node joins, comes back, dies or is
/// removed) and at the start of each session.
public struct OverlayMessage: Codable, Sendable, Equatable {
    public var clusterCIDR: String
    public var vni: Int
    public var port: Int
    public var peers: [OverlayPeer]

    public init(clusterCIDR: String, vni: Int, port: Int, peers: [OverlayPeer]) {
        self.clusterCIDR = clusterCIDR
        self.vni = vni
        self.port = port
        self.peers = peers
    }

    /// The cluster's VXLAN network identifier and UDP port (IANA's).
    public static let defaultVNI = 4096
    public static let defaultPort = 4789
}
