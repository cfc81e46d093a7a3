import HakoNetwork

/// Picks a new network's VNI and CIDR: pure, from the networks that exist.
///
/// - VNIs: the lowest free one above the cluster network's (`overlay_vni`,
///   default 4096), as Swarm's start at 4096 too.
/// - CIDRs: `--subnet` as given (an IPv4 network of /8 to /24 overlapping
///   neither the cluster CIDR nor another network), else the lowest free
///   `/defaultPrefix` (/20) of the pool (`network_pool`, default
///   10.96.0.0/12: 256 networks) that overlaps neither.
/// - Node subnets: each node that runs a task on the network leases one
///   subnet of it, of `nodePrefix(for:)`: /24 of a /16 (as the cluster
///   network), /26 of a /20 (64 nodes of 62 addresses), /28 of a /24 (16
///   nodes of 14).
public struct NetworkAllocator: Sendable {
    public let pool: IPv4Network
    public let cluster: IPv4Network
    public let clusterVNI: Int
    public static let defaultPool = "10.96.0.0/12"
    public static let defaultPrefix = 20
    public static let maxVNI = 16_777_215

    public init(pool: String, cluster: String, clusterVNI: Int) throws(ClusterError) {
        guard let p = IPv4Network(pool), p.prefix <= NetworkAllocator.defaultPrefix else {
            throw .config(key: "network_pool", reason: "\"\(pool)\" is not an IPv4 network of /\(NetworkAllocator.defaultPrefix) or larger such as \(NetworkAllocator.defaultPool)")
        }
        // A pool that holds the cluster CIDR (10.0.0.0/8) is fine: its /20s that overlap it are skipped.
        guard let c = IPv4Network(cluster) else { throw .config(key: "cluster_cidr", reason: "\"\(cluster)\" is not an IPv4 network") }
        self.pool = p
        self.cluster = c
        self.clusterVNI = clusterVNI
    }

    /// The size of the subnet one node leases in a network of `prefix`.
    public static func nodePrefix(for prefix: Int) -> Int { max(24, min(prefix + 6, 28)) }

    /// The lowest VNI above the cluster network's that no network has.
    public func vni(taken: Set<Int>) throws(ClusterError) -> Int {
        var v = clusterVNI + 1
        while v <= NetworkAllocator.maxVNI {
            if !taken.contains(v) { return v }
            v += 1
        }
        throw .conflict("no free VXLAN network identifier above \(clusterVNI)")
    }

    /// The network's CIDR: `requested` checked, or the lowest free one of the pool.
    public func subnet(requested: String?, taken: [IPv4Network]) throws(ClusterError) -> IPv4Network {
        if let requested {
            guard let n = IPv4Network(requested) else {
                throw .invalid("invalid --subnet \"\(requested)\": an IPv4 network such as 10.97.0.0/24 (host bits zero)")
            }
            guard (8...24).contains(n.prefix) else { throw .invalid("--subnet \(n): between /8 and /24 (each node leases a part of it)") }
            guard !n.overlaps(cluster) else { throw .conflict("--subnet \(n) overlaps the cluster network's \(cluster)") }
            if let other = taken.first(where: { $0.overlaps(n) }) { throw .conflict("--subnet \(n) overlaps network \(other)") }
            return n
        }
        let count = 1 << (NetworkAllocator.defaultPrefix - pool.prefix)
        for i in 0..<count {
            let n = IPv4Network(IPv4Address(pool.address.value + UInt32(i) << UInt32(32 - NetworkAllocator.defaultPrefix)), prefix: NetworkAllocator.defaultPrefix)
            if !n.overlaps(cluster) && !taken.contains(where: { $0.overlaps(n) }) { return n }
        }
        throw .conflict("no free /\(NetworkAllocator.defaultPrefix) left in the network pool \(pool): remove a network, or give --subnet")
    }
}
