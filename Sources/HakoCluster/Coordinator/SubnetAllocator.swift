/// An IPv4 network: address and prefix length, host bits zero.
public struct IPv4CIDR: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var address: UInt32
    public var prefix: Int

    public init(address: UInt32, prefix: Int) {
        self.prefix = prefix
        self.address = prefix == 0 ? 0 : address & (UInt32.max << UInt32(32 - prefix))
    }

    /// "10.88.0.0/16"; refuses host bits outside the prefix ("10.88.1.0/16").
    public init?(parsing s: String) {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let p = Int(parts[1]), (0...32).contains(p),
              let a = IPv4CIDR.parseAddress(String(parts[0])) else { return nil }
        self.init(address: a, prefix: p)
        guard self.address == a else { return nil }
    }

    public static func parseAddress(_ s: String) -> UInt32? {
        let octets = s.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var v: UInt32 = 0
        for o in octets {
            guard !o.isEmpty, o.count <= 3, o.allSatisfy(\.isNumber), let n = UInt32(o), n <= 255 else { return nil }
            v = v << 8 | n
        }
        return v
    }

    public static func formatAddress(_ a: UInt32) -> String {
        "\(a >> 24).\((a >> 16) & 255).\((a >> 8) & 255).\(a & 255)"
    }

    public var description: String { "\(IPv4CIDR.formatAddress(address))/\(prefix)" }
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefix) }

    public func contains(_ other: IPv4CIDR) -> Bool {
        other.prefix >= prefix && IPv4CIDR(address: other.address, prefix: prefix).address == address
    }

    public static func < (a: IPv4CIDR, b: IPv4CIDR) -> Bool { (a.address, a.prefix) < (b.address, b.prefix) }
}

/// Splits the cluster CIDR into one subnet per node (a /24 by default) and
/// picks the lowest free one. Pure: leases live in the store.
public struct SubnetAllocator: Sendable {
    public let cluster: IPv4CIDR
    public let prefix: Int

    public init(cluster: String, prefix: Int) throws(ClusterError) {
        guard let c = IPv4CIDR(parsing: cluster) else {
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

    public func subnet(_ index: Int) -> IPv4CIDR {
        IPv4CIDR(address: cluster.address + UInt32(index) << UInt32(32 - prefix), prefix: prefix)
    }

    /// Whether `s` is one of this allocator's subnets.
    public func owns(_ s: String) -> Bool {
        guard let c = IPv4CIDR(parsing: s) else { return false }
        return c.prefix == prefix && cluster.contains(c)
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
