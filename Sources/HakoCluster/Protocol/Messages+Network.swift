/// `network create`: the coordinator allocates what is not given.
public struct NetworkCreateRequest: Codable, Sendable {
    public var name: String
    /// `--subnet`; nil: the lowest free /20 of the network pool.
    public var subnet: String?
    public var attachable: Bool
    public var labels: [String: String]
    public init(name: String, subnet: String? = nil, attachable: Bool = false, labels: [String: String] = [:]) {
        self.name = name
        self.subnet = subnet
        self.attachable = attachable
        self.labels = labels
    }
}

/// `network inspect|rm`: by id, name or id prefix.
public struct NetworkRef: Codable, Sendable {
    public var ref: String
    public init(ref: String) { self.ref = ref }
}

/// What `network ls` and `inspect` show.
public struct NetworkView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// "overlay", as Swarm's.
    public var driver: String
    /// "swarm", as Swarm's.
    public var scope: String
    public var subnet: String
    /// The subnet each node leases of it.
    public var nodePrefix: Int
    public var vni: Int
    public var attachable: Bool
    /// The built-in cluster network (every service is on it that names no other network): it cannot be removed.
    public var builtIn: Bool
    public var labels: [String: String]
    public var created: Double
    /// The services on it.
    public var services: [String]
}

public struct NetworkList: Codable, Sendable { public var items: [NetworkView] }
