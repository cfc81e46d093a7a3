import HakoNetwork

/// Splits the cluster CIDR into one subnet per node (a /24 by default) and
/// picks the lowest free one. Pure: leases live in the store.
public struct SubnetAllocator: Sendable {
    public let cluster: IPv4Network
    public let prefix: Int

    public init(cluster: String, prefix: Int) throws(ClusterError) {
        guard let c = IPv4Network(cluster) else {
            throw .config(key: "cluster_cidr", reason: "\"\(cluster)\" is not an IPv4 network such as 10.88.0.0/16 (host bits must be zero)")
        }
        guard prefix >= c.prefix, prefix <= 30 else {
            throw .config(key: "node_subnet_prefix", reason: "/\(prefix) must lie between the cluster's /\(c.prefix) and /30")
        }
        guard prefix - c.prefix <= 16 else {
            throw .config(key: "node_subnet_prefix", reason: "/\(prefix) splits \(c) into more than 65,536 subnets")
        }
        self.cluster = c
        self.prefix = prefix
    }

    /// How many node subnets the cluster CIDR holds.
    public var capacity: Int { 1 << (prefix - cluster.prefix) }

    public func subnet(_ index: Int) -> IPv4Network {
        IPv4Network(IPv4Address(cluster.address.value + UInt32(index) << UInt32(32 - prefix)), prefix: prefix)
    }

    /// Whether `s` is one of this allocator's subnets.
    public func owns(_ s: String) -> Bool {
        guard let c = IPv4Network(s) else { return false }
        return c.prefix == prefix && cluster.contains(c.address)
    }

    /// The lowest subnet not in `leased`; nil when all are taken.
    public func allocate(leased: Set<String>) -> String? {
        for i in 0..<capacity {
            let s = subnet(i).description
            if !leased.contains(s) { return s }
        }
        return nil
    }
}
