import HakoNetwork

/// A cluster network as stored (`hako cluster network create`, Swarm's
/// overlay networks): its own VXLAN network identifier and CIDR, which the
/// coordinator allocates (`NetworkAllocator`) and replicates through the log
/// like every other record. The one cluster network of `cluster_cidr` and
/// `overlay_vni` is not a record: it comes from the coordinator's
/// configuration (`NetworkView.cluster`).
public struct NetworkRecord: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// "10.96.0.0/20": cut into one `nodePrefix` subnet per node that runs a task on it.
    public var subnet: String
    public var nodePrefix: Int
    public var vni: Int
    /// Swarm's `--attachable` (recorded and shown; only services attach today).
    public var attachable: Bool
    public var labels: [String: String]
    public var created: Double
    /// Node id → the subnet of this network it leased: the lowest free one,
    /// when it is first assigned a task on the network; kept while the node
    /// and the network exist (a node keeps its addresses on the network, and
    /// the log is not written each time its last task there ends).
    public var leases: [String: String]

    public init(id: String, name: String, subnet: String, nodePrefix: Int, vni: Int, attachable: Bool, labels: [String: String], created: Double,
                leases: [String: String] = [:]) {
        self.id = id
        self.name = name
        self.subnet = subnet
        self.nodePrefix = nodePrefix
        self.vni = vni
        self.attachable = attachable
        self.labels = labels
        self.created = created
        self.leases = leases
    }

    enum CodingKeys: String, CodingKey { case id, name, subnet, nodePrefix, vni, attachable, labels, created, leases }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id), name: try c.decode(String.self, forKey: .name),
                  subnet: try c.decode(String.self, forKey: .subnet), nodePrefix: try c.decode(Int.self, forKey: .nodePrefix),
                  vni: try c.decode(Int.self, forKey: .vni), attachable: try c.decode(Bool.self, forKey: .attachable),
                  labels: try c.decode([String: String].self, forKey: .labels), created: try c.decode(Double.self, forKey: .created),
                  leases: try c.decodeIfPresent([String: String].self, forKey: .leases) ?? [:])
    }

    /// The subnets of its nodes: a pure allocator over its CIDR.
    public var nodeSubnets: SubnetAllocator? { try? SubnetAllocator(cluster: subnet, prefix: nodePrefix) }

    /// Names a service's `--network` cannot give a network: the built-in ones (and Docker's local ones).
    public static let reservedNames: Set<String> = [ServiceSpec.clusterNetwork, "host", "none", "bridge", "ingress", "default"]

    /// Docker's network names: a letter or digit, then letters, digits, '_', '.' or '-'; here at most 64.
    public static func isValidName(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...64).contains(b.count) else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        guard let first = b.first, alnum(first) else { return false }
        return b.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    /// Refuses a name or labels Docker would refuse, and the built-in names.
    public static func validate(name: String, labels: [String: String]) throws(ClusterError) {
        guard isValidName(name) else {
            throw .invalid("invalid network name \"\(name)\": 1–64 letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        guard !reservedNames.contains(name) else { throw .conflict("network name \(name) is reserved (a built-in network)") }
        for k in labels.keys where k.isEmpty { throw .invalid("a label needs a key") }
    }
}

/// A service's place on a cluster network: `--network NAME` or Swarm's long
/// form `--network name=NAME,alias=A,alias=B`. `id` is filled in by the
/// coordinator when the service is created or updated (a network removed and
/// made again under the same name is another network).
public struct NetworkAttachment: Codable, Sendable, Equatable, Hashable {
    /// The network's name.
    public var target: String
    /// Its id, resolved by the coordinator ("" until then).
    public var id: String
    /// Other names the service has on this network (and only there).
    public var aliases: [String]

    public init(target: String, id: String = "", aliases: [String] = []) {
        self.target = target
        self.id = id
        self.aliases = aliases
    }

    /// `NAME`, or `name=NAME,alias=A,alias=B` (`target=` as Swarm's synonym).
    public init(parsing text: String) throws(ClusterError) {
        func bad(_ why: String) -> ClusterError { .invalid("invalid --network \"\(text)\": \(why)") }
        guard text.contains("=") else {
            guard !text.isEmpty else { throw bad("a name is needed") }
            self.init(target: text)
            return
        }
        var target: String?
        var aliases: [String] = []
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard kv.count == 2, !kv[1].isEmpty else { throw bad("\"\(field)\" is not KEY=VALUE") }
            switch kv[0] {
            case "name", "target":
                guard target == nil else { throw bad("one name") }
                target = kv[1]
            case "alias": aliases.append(kv[1])
            default: throw bad("unknown option \(kv[0]) (name, alias)")
            }
        }
        guard let target else { throw bad("name= is needed") }
        self.init(target: target, aliases: aliases)
    }

    /// Names resolvable by the containers: letters, digits, '-', '_' and '.', as service names.
    public func validate() throws(ClusterError) {
        guard NetworkRecord.isValidName(target) else { throw .invalid("invalid network name \"\(target)\"") }
        guard !NetworkRecord.reservedNames.contains(target) else {
            throw .invalid("network \(target) is built in: name it alone (--network \(target)), not with other networks")
        }
        for a in aliases where !Identifiers.isValidName(a) {
            throw .invalid("network \(target): invalid alias \"\(a)\" (1–63 letters, digits, '-', '_' or '.', starting with a letter or digit)")
        }
    }
}

extension ServiceSpec {
    /// Whether its tasks are on the built-in cluster network: when they name
    /// no other, and also when they publish ports (the routing mesh and the
    /// published ports reach them there, as Swarm's ingress network does).
    public var isOnClusterNetwork: Bool {
        network == ServiceSpec.clusterNetwork && (networks.isEmpty || !ports.isEmpty || !ingress.isEmpty)
    }

    /// Cluster networks go with the cluster mode, each once.
    func validateNetworks() throws(ClusterError) {
        guard !networks.isEmpty else { return }
        guard network == ServiceSpec.clusterNetwork else {
            throw .invalid("--network \(network) cannot be combined with cluster networks (\(networks.map(\.target).joined(separator: ", ")))")
        }
        var seen = Set<String>()
        for a in networks {
            try a.validate()
            guard seen.insert(a.target).inserted else { throw .invalid("network \(a.target) is named twice") }
        }
    }
}

extension ServiceSpec {
    /// `--network` given once or more: one of the built-in modes alone
    /// (cluster, host, none), or cluster networks by name or in the long form.
    public mutating func setNetworks(_ values: [String]) throws(ClusterError) {
        guard !values.isEmpty else { return }
        let builtIn: Set<String> = [ServiceSpec.clusterNetwork, "host", "none"]
        if values.contains(where: builtIn.contains) {
            guard values.count == 1, let v = values.first else {
                throw .invalid("--network \(values.filter(builtIn.contains).joined(separator: ", ")) cannot be combined with other networks")
            }
            network = v
            networks = []
            return
        }
        var out: [NetworkAttachment] = []
        for v in values { out.append(try NetworkAttachment(parsing: v)) }
        network = ServiceSpec.clusterNetwork
        networks = out
    }

    /// `service update --network-rm NAME --network-add SPEC`: removals first,
    /// then additions (an added one replaces the attachment to its network).
    public mutating func changeNetworks(remove: [String], add: [String]) throws(ClusterError) {
        for r in remove where !networks.contains(where: { $0.target == r || (!$0.id.isEmpty && $0.id == r) }) {
            throw .invalid("the service is not on network \(r)")
        }
        networks.removeAll { a in remove.contains { $0 == a.target || (!a.id.isEmpty && $0 == a.id) } }
        for v in add {
            let a = try NetworkAttachment(parsing: v)
            networks.removeAll { $0.target == a.target }
            networks.append(a)
        }
        if !add.isEmpty { network = ServiceSpec.clusterNetwork }
    }
}
